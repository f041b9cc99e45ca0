"""Keeping the memory current: after an import or a sync, and as live messages come.

Each chat the dataset may use (dataset.build.select_chats: the owner's choice of
chats, never bots, channels or excluded ones) is indexed up to its last message. New
messages re-index only the chat's last indexed conversation (they may continue it) and
what follows; a chat that may no longer be used leaves the index at the next refresh.
The work of each chat runs in a thread, so the bot's event loop keeps answering; the
first index of a large history (an import) in worker processes, as many as
`dataset.workers` allows, while this process writes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from storage import Database
from storage import memory as index
from storage import settings as stored_settings
from storage.chats import Chat
from storage.memory import IndexedUntil
from storage.reader import Reader
from storage.rows import ExchangeRow
from twin.dataset.build import PARALLEL_FROM_MESSAGES, sample_rules, select_chats
from twin.dataset.conversations import conversation_starts, conversation_turns
from twin.dataset.pii import ScrubStats
from twin.dataset.settings import DatasetSettings
from twin.dataset.workers import worker_pool
from twin.memory.exchanges import conversation_exchanges


@dataclass
class RefreshReport:
    chats: int = 0  # chats whose new messages were indexed
    messages: int = 0  # messages read (the re-indexed conversations included)
    exchanges: int = 0  # exchanges written
    removed: int = 0  # exchanges of chats that may no longer be used
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class _ChatUpdate:
    chat_id: int
    since: int | None  # exchanges of conversations begun then or later are replaced
    rows: list[ExchangeRow]
    until: IndexedUntil
    messages: int


async def refresh(
    db: Database,
    dataset: DatasetSettings,
    separator: str,
    only: Collection[int] | None = None,
) -> RefreshReport:
    """Index what is new in every chat the dataset may use and forget the others; with
    `only`, just those chats (a message came there), if the dataset may use them.
    `separator` joins a burst into a turn (the prompt's burst_separator)."""
    started = time.perf_counter()
    report = RefreshReport()
    rules = _rules(dataset, separator)
    if await stored_settings.get(db, stored_settings.MEMORY_RULES) != rules:
        # Conversations, turns or the replies that count are cut differently now.
        async with db.transaction():
            await index.clear(db)
            await stored_settings.put(db, stored_settings.MEMORY_RULES, rules)
        only = None  # every chat is to be indexed again, not just those asked for
    indexed = await index.indexed_until(db)
    chats, messages = await asyncio.to_thread(_chats, db.path)
    chosen = [chat.id for chat in select_chats(chats, dataset)]
    targets = chosen if only is None else [c for c in chosen if c in only]
    jobs = [(db.path, chat_id, indexed.get(chat_id), dataset, separator) for chat_id in targets]
    workers = dataset.workers or os.cpu_count() or 1
    if indexed or messages < PARALLEL_FROM_MESSAGES or workers < 2 or len(jobs) < 2:
        updates = _in_a_thread(jobs)  # new messages since the last refresh: little work
    else:
        updates = _in_processes(jobs, workers)  # a first import: all of it
    async for update in updates:
        if update is None:
            continue
        await index.replace_from(db, update.chat_id, update.rows, update.since, update.until)
        report.chats += 1
        report.messages += update.messages
        report.exchanges += len(update.rows)
    if only is None:
        report.removed = await index.forget(db, chosen)
    report.seconds = time.perf_counter() - started
    return report


def _rules(dataset: DatasetSettings, separator: str) -> dict[str, object]:
    """The settings an exchange depends on: when any changes, everything is indexed again."""
    return {
        "session_gap": dataset.session_gap,
        "min_response_chars": dataset.min_response_chars,
        "max_response_chars": dataset.max_response_chars,
        "burst_separator": separator,
    }


def _chats(path: Path) -> tuple[list[Chat], int]:
    with Reader(path) as reader:
        return reader.chats(), reader.message_count()


_Job = tuple[Path, int, IndexedUntil | None, DatasetSettings, str]  # _chat_update's


async def _in_a_thread(jobs: list[_Job]) -> AsyncIterator[_ChatUpdate | None]:
    for job in jobs:
        yield await asyncio.to_thread(_chat_update, *job)


async def _in_processes(jobs: list[_Job], workers: int) -> AsyncIterator[_ChatUpdate | None]:
    """Chats read and cut into exchanges in worker processes while this one writes the
    index: the Python work runs on every core."""
    loop = asyncio.get_running_loop()
    with worker_pool(workers) as pool:
        pending = [loop.run_in_executor(pool, _chat_update, *job) for job in jobs]
        try:
            for future in pending:  # in order: one chat's update at a time to the index
                yield await future
        finally:
            for future in pending:
                future.cancel()


def _chat_update(
    path: Path,
    chat_id: int,
    indexed: IndexedUntil | None,
    dataset: DatasetSettings,
    separator: str,
) -> _ChatUpdate | None:
    """The chat's exchanges from its last indexed conversation on; None: nothing new.
    Its own read-only connection: SQLite connections stay in the thread that made them."""
    with Reader(path) as reader:
        dates = reader.chat_dates(chat_id, indexed.first_message if indexed else None)
        if not dates or (indexed is not None and dates[-1][0] == indexed.last_message):
            return None
        rows = reader.chat_rows(chat_id, dates[0][0], dates[-1][0])
    starts = conversation_starts((date for _, date in dates), dataset.session_gap)
    rules = sample_rules(dataset, budget=0)  # the context budget: samples only
    exchanges = [
        exchange
        for turns in conversation_turns(rows, dataset.session_gap, separator, ScrubStats())
        for exchange in conversation_exchanges(turns, chat_id, rules)
    ]
    return _ChatUpdate(
        chat_id=chat_id,
        since=dates[0][1] if indexed is not None else None,  # that conversation's start
        rows=exchanges,
        until=IndexedUntil(first_message=dates[starts[-1]][0], last_message=dates[-1][0]),
        messages=len(dates),
    )
