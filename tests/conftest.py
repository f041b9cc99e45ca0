"""Shared test fixtures: paths to export samples and a fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Real exports of other people's chats, read in place beside the checkout, never copied
# into it; a clone without them skips the tests that read them.
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


def sample_texts() -> list[str]:
    """Text to train the tiny tokenizer on: the sample persona and the prompt template."""
    import json as _json

    from twin.commands.demo import sample_export
    from twin.prompt.settings import DEFAULT_TEMPLATE

    export = _json.loads(sample_export().read_text(encoding="utf-8"))
    texts = [m["text"] for c in export["chats"]["list"] for m in c["messages"] if m["text"]]
    return [*texts, DEFAULT_TEMPLATE] * 2


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_model import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "Gemma-3-tiny", sample_texts())


@pytest.fixture(scope="session")
def small_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A base model's GGUF and the litgpt checkpoint converted from it (in float32: the
    parity checks compare like with like)."""
    import torch

    from tests.small_gguf import write_small_gguf
    from twin.model.gguf_convert import write_checkpoint

    folder = tmp_path_factory.mktemp("base")
    gguf = folder / "base.gguf"
    write_small_gguf(gguf)
    checkpoint = folder / "Gemma-3-270m"
    checkpoint.mkdir()
    write_checkpoint(gguf, checkpoint, torch.float32)
    return gguf, checkpoint
