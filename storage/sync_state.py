"""The `sync_state` table: how far the userbot has read each chat (its high-water mark)."""

from __future__ import annotations

import time

from storage.database import Database


async def high_water_mark(db: Database, chat_id: int) -> int:
    row = await db.fetchone("SELECT max_message_id FROM sync_state WHERE chat_id = ?", (chat_id,))
    return int(row[0]) if row else 0


async def advance(db: Database, chat_id: int, message_id: int) -> None:
    """Record that everything up to `message_id` is stored (never moves back)."""
    await db.execute(
        "INSERT INTO sync_state (chat_id, max_message_id, updated) VALUES (?, ?, ?) "
        "ON CONFLICT (chat_id) DO UPDATE SET max_message_id = MAX(max_message_id, "
        "excluded.max_message_id), updated = excluded.updated",
        (chat_id, message_id, int(time.time())),
    )
