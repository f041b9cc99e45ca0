"""Shared test fixtures: paths to export samples and a fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Real exports from public repositories, read in place (see PROVENANCE.md there).
SHARED_EXPORTS = ROOT.parent / "shared" / "fixtures" / "telegram"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "twin.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(db_path)
    try:
        yield database
    finally:
        await database.close()
