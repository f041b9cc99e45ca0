"""The `people` table: names of the senders seen in chats."""

from __future__ import annotations

from collections.abc import Mapping

from storage.database import Database


async def upsert_names(db: Database, names: Mapping[int, str]) -> None:
    async with db.transaction():
        await db.executemany(
            "INSERT INTO people (id, name) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            [(person_id, name) for person_id, name in names.items() if name],
        )
