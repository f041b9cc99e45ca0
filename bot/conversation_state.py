"""aiogram's conversation state (FSM) kept in the twin database.

The one state twin has is "the owner's next message is the corrected draft". In
aiogram's MemoryStorage it would die with the process: after a restart the owner's
correction would reach the twin as a chat message instead of going out as their reply.
Here it lives in the `settings` table, beside the drafts it points at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey

from storage import Database
from storage import settings as settings_table


class DatabaseStorage(BaseStorage):
    def __init__(self, db: Database) -> None:
        self.db = db
        self.keys = DefaultKeyBuilder(prefix="fsm", with_bot_id=True, with_destiny=True)

    async def _record(self, key: StorageKey) -> dict[str, Any]:
        return await settings_table.get(self.db, self.keys.build(key), {})

    async def _store(self, key: StorageKey, record: dict[str, Any]) -> None:
        name = self.keys.build(key)
        if record.get("state") is None and not record.get("data"):
            await settings_table.delete(self.db, name)
        else:
            await settings_table.put(self.db, name, record)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        record = await self._record(key)
        record["state"] = state.state if isinstance(state, State) else state
        await self._store(key, record)

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._record(key)).get("state")

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        record = await self._record(key)
        record["data"] = dict(data)
        await self._store(key, record)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return dict((await self._record(key)).get("data", {}))

    async def close(self) -> None:
        pass  # the database belongs to whoever opened it
