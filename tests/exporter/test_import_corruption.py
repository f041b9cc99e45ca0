"""Property: a corrupted export either imports completely or fails cleanly.

Hypothesis damages a valid export at random, in its bytes (truncation, deleted or
inserted spans, flipped bytes) and in its structure (a field given a value of another
type, a key removed). Every run must end in a complete import or in one of the clean
errors with the database byte-for-byte as before; never a traceback of another kind,
never a partial write.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.desktop_export import ExportFormatError
from exporter.desktop_import import OwnerError, import_desktop_export
from storage import open_database
from tests.conftest import FIXTURES

VALID = (FIXTURES / "full_account" / "result.json").read_bytes()
SEED = FIXTURES / "legacy_2020" / "result.json"
CLEAN_ERRORS = (ExportFormatError, OwnerError)


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "twin.db"

    async def seed() -> None:
        async with open_database(path) as db:
            await import_desktop_export(db, SEED)

    asyncio.run(seed())
    return path


def byte_damage() -> st.SearchStrategy[bytes]:
    size = len(VALID)
    position = st.integers(0, size - 1)
    return st.one_of(
        position.map(lambda i: VALID[:i]),
        st.tuples(position, st.integers(1, 200)).map(
            lambda t: VALID[: t[0]] + VALID[t[0] + t[1] :]
        ),
        st.tuples(position, st.binary(min_size=1, max_size=8)).map(
            lambda t: VALID[: t[0]] + t[1] + VALID[t[0] :]
        ),
        st.tuples(position, st.integers(0, 255)).map(
            lambda t: VALID[: t[0]] + bytes([t[1]]) + VALID[t[0] + 1 :]
        ),
    )


odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def structure_damage(draw: st.DrawFn) -> bytes:
    export: Any = json.loads(VALID)
    chats = export["chats"]["list"]
    chat = draw(st.sampled_from(chats))
    if draw(st.booleans()) and chat["messages"]:
        target = draw(st.sampled_from(chat["messages"]))
    else:
        target = chat
    key = draw(st.sampled_from(sorted(target)))
    if draw(st.booleans()):
        del target[key]
    else:
        target[key] = draw(odd_values)
    return json.dumps(export, ensure_ascii=False, indent=1).encode()


def attempt(seeded_db: Path, tmp_path: Path, data: bytes) -> None:
    db_path = tmp_path / "twin.db"
    shutil.copyfile(seeded_db, db_path)
    before = db_path.read_bytes()
    export = tmp_path / "result.json"
    export.write_bytes(data)

    async def run() -> int:
        async with open_database(db_path) as db:
            count_before = (await db.fetchone("SELECT COUNT(*) FROM messages"))[0]
            try:
                report = await import_desktop_export(db, export)
            except CLEAN_ERRORS as err:
                assert "\n" not in str(err)
                return -1
            count_after = (await db.fetchone("SELECT COUNT(*) FROM messages"))[0]
            assert count_after == count_before + report.new  # complete, nothing partial
            return report.new

    if asyncio.run(run()) == -1:
        assert db_path.read_bytes() == before


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=byte_damage())
def test_byte_damage_is_all_or_nothing(seeded_db: Path, tmp_path: Path, data: bytes) -> None:
    attempt(seeded_db, tmp_path, data)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=structure_damage())
def test_structure_damage_is_all_or_nothing(seeded_db: Path, tmp_path: Path, data: bytes) -> None:
    attempt(seeded_db, tmp_path, data)
