"""Keeping the memory current while twin runs: every chat once at start (what came
while it was off), then a chat each time the owner writes there (a new reply is a new
exchange to remember).

Refreshes run one at a time in the background: two at once could index a chat twice,
and a Telethon handler must not wait for one. A chat already waiting for its refresh
is not queued again (a reply of five messages is one refresh, not five).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from storage import Database, StorageError
from twin.dataset.settings import DatasetSettings
from twin.memory.index import refresh
from twin.memory.settings import MemorySettings

log = logging.getLogger(__name__)


class MemoryKeeper:
    def __init__(
        self,
        db: Database,
        memory: MemorySettings,
        dataset: DatasetSettings,
        separator: str,  # the prompt's burst_separator: turns are made with it
    ) -> None:
        self.db = db
        self.enabled = memory.enabled
        self.dataset = dataset
        self.separator = separator
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: set[int] = set()  # chats queued whose refresh has not begun

    def start(self) -> None:
        """Index what came while twin was off (in the background: the bot serves meanwhile)."""
        self._spawn(None)

    def chat_changed(self, chat_id: int) -> None:
        if chat_id not in self._waiting:
            self._spawn([chat_id])

    def _spawn(self, only: list[int] | None) -> None:
        if not self.enabled:
            return
        self._waiting.update(only or ())
        task = asyncio.create_task(self._refresh(only))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, only: list[int] | None) -> None:
        async with self._lock:
            self._waiting.difference_update(only or ())  # what comes from now on: a new refresh
            try:
                report = await refresh(self.db, self.dataset, self.separator, only)
            except (StorageError, sqlite3.Error, OSError) as err:  # memory lags; replies go on
                log.warning("memory not refreshed: %s", err)
                return
        if report.exchanges or report.removed:
            log.info(
                "memory: %d exchanges of %d chats indexed, %d removed, %.1f s",
                report.exchanges,
                report.chats,
                report.removed,
                report.seconds,
            )

    async def stop(self) -> None:
        """Let refreshes under way finish: each is one transaction per chat anyway."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
