"""Keeping the memory current: after an import or a sync, and as live messages come.

Each chat the dataset may use (dataset.build.select_chats: the owner's choice of
chats, never bots, channels or excluded ones) is indexed up to its last message. New
messages re-index only the chat's last indexed conversation (they may continue it) and
what follows; a chat that may no longer be used leaves the index at the next refresh.
The work of each chat runs in a thread, so the bot's event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from dataset.build import sample_rules, select_chats
from dataset.conversations import conversation_starts, conversation_turns
from dataset.pii import ScrubStats
from dataset.prompt import Prompt
from dataset.settings import DatasetSettings, PromptSettings
from memory.exchanges import conversation_exchanges
from storage import Database
from storage import memory as index
from storage import settings as stored_settings
from storage.chats import Chat
from storage.memory import IndexedUntil
from storage.reader import Reader
from storage.rows import ExchangeRow


@dataclass
class RefreshReport:
    chats: int = 0  # chats whose new messages were indexed
    messages: int = 0  # messages read (the re-indexed conversations included)
    exchanges: int = 0  # exchanges written
    removed: int = 0  # exchanges of chats that may no longer be used
    seconds: float = 0.0


@dataclass(frozen=True)
class _ChatUpdate:
    since: int | None  # exchanges of conversations begun then or later are replaced
    rows: list[ExchangeRow]
    until: IndexedUntil
    messages: int


async def refresh(db: Database, dataset: DatasetSettings, prompt: PromptSettings) -> RefreshReport:
    """Index what is new in every chat the dataset may use; forget the others."""
    started = time.perf_counter()
    report = RefreshReport()
    rules = _rules(dataset, prompt)
    if await stored_settings.get(db, stored_settings.MEMORY_RULES) != rules:
        # Conversations, turns or the replies that count are cut differently now.
        async with db.transaction():
            await index.clear(db)
            await stored_settings.put(db, stored_settings.MEMORY_RULES, rules)
    indexed = await index.indexed_until(db)
    chosen = [chat.id for chat in select_chats(await asyncio.to_thread(_chats, db.path), dataset)]
    for chat_id in chosen:
        update = await asyncio.to_thread(
            _chat_update, db.path, chat_id, indexed.get(chat_id), dataset, Prompt(prompt)
        )
        if update is None:
            continue
        await index.replace_from(db, chat_id, update.rows, update.since, update.until)
        report.chats += 1
        report.messages += update.messages
        report.exchanges += len(update.rows)
    report.removed = await index.forget(db, chosen)
    report.seconds = time.perf_counter() - started
    return report


def _rules(dataset: DatasetSettings, prompt: PromptSettings) -> dict[str, object]:
    """The settings an exchange depends on: when any changes, everything is indexed again."""
    return {
        "session_gap": dataset.session_gap,
        "min_response_chars": dataset.min_response_chars,
        "max_response_chars": dataset.max_response_chars,
        "burst_separator": prompt.burst_separator,
    }


def _chats(path: Path) -> list[Chat]:
    with Reader(path) as reader:
        return reader.chats()


def _chat_update(
    path: Path,
    chat_id: int,
    indexed: IndexedUntil | None,
    dataset: DatasetSettings,
    prompt: Prompt,
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
        for turns in conversation_turns(rows, dataset.session_gap, prompt, ScrubStats())
        for exchange in conversation_exchanges(turns, chat_id, rules)
    ]
    return _ChatUpdate(
        since=dates[0][1] if indexed is not None else None,  # that conversation's start
        rows=exchanges,
        until=IndexedUntil(first_message=dates[starts[-1]][0], last_message=dates[-1][0]),
        messages=len(dates),
    )
