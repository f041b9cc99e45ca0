"""The memory kept current while twin runs: what came while it was off, then each chat
the owner writes in, one refresh at a time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter import ingest
from storage import open_database
from storage.rows import MessageRow
from tests.exports import OWNER, T0, chat, dialogue, full_export, import_into
from twin.dataset.settings import DatasetSettings
from twin.memory import keeper as memory_keeper
from twin.memory.keeper import MemoryKeeper
from twin.memory.settings import MemorySettings
from twin.prompt.settings import PromptSettings

PEER, OTHER = 2000, 3000


def exchanges(db_path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db_path) as conn:
        found = conn.execute("SELECT chat_id, message, reply FROM exchanges ORDER BY date")
        return found.fetchall()


async def test_start_indexes_everything_and_a_new_reply_joins_at_once(tmp_path: Path) -> None:
    db_path = tmp_path / "twin.db"
    lines = [(0, "them: pizza tonight?"), (30, "me: sure, at 8")]
    await import_into(
        db_path,
        full_export([chat(PEER, dialogue(PEER, lines)), chat(OTHER, dialogue(OTHER, lines))]),
    )
    async with open_database(db_path) as db:
        keeper = MemoryKeeper(
            db, MemorySettings(), DatasetSettings(), PromptSettings().burst_separator
        )
        keeper.start()
        keeper.chat_changed(PEER)  # at once: the two refreshes must not index PEER twice
        await keeper.stop()
        assert sorted(exchanges(db_path)) == [
            (PEER, "pizza tonight?", "sure, at 8"),
            (OTHER, "pizza tonight?", "sure, at 8"),
        ]
        # A live message and the owner's answer, as the userbot stores them.
        for message_id, sender, at, text in (
            (90, PEER, 60, "and beer?"),
            (91, OWNER, 90, "beer too"),
        ):
            row = MessageRow(PEER, message_id, sender, sender == OWNER, T0 + at, text, *[None] * 5)
            async with db.transaction():
                await ingest.store(db, [row])
        keeper.chat_changed(PEER)
        await keeper.stop()
        assert exchanges(db_path)[-1] == (PEER, "and beer?", "beer too")


async def test_memory_off_indexes_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "twin.db"
    lines = [(0, "them: pizza tonight?"), (30, "me: sure, at 8")]
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, lines))]))
    async with open_database(db_path) as db:
        keeper = MemoryKeeper(
            db, MemorySettings(enabled=False), DatasetSettings(), PromptSettings().burst_separator
        )
        keeper.start()
        keeper.chat_changed(PEER)
        await keeper.stop()
    assert exchanges(db_path) == []


async def test_a_burst_of_the_owners_messages_is_one_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, [(0, "them: hi")]))]))
    asked: list[list[int] | None] = []
    real = memory_keeper.refresh

    async def counted(*args: object) -> object:
        asked.append(args[-1])  # type: ignore[arg-type]
        return await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(memory_keeper, "refresh", counted)
    async with open_database(db_path) as db:
        keeper = MemoryKeeper(
            db, MemorySettings(), DatasetSettings(), PromptSettings().burst_separator
        )
        keeper.start()
        for _ in range(5):  # a reply of five messages, while the first refresh runs
            keeper.chat_changed(PEER)
        await keeper.stop()
        keeper.chat_changed(PEER)  # later: a refresh of its own
        await keeper.stop()
    assert asked == [None, [PEER], [PEER]]
