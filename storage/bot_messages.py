"""The `bot_messages` table: what people and the twin said to each other in the bot.

It is the context of the next reply, and survives restarts; it is never training data.
"""

from __future__ import annotations

import time

from storage.database import Database
from storage.rows import HistoryRow


async def add(db: Database, chat_id: int, sender_id: int, is_twin: bool, text: str) -> None:
    async with db.transaction():
        await db.execute(
            "INSERT INTO bot_messages (chat_id, sender_id, is_twin, date, text) "
            "VALUES (?, ?, ?, ?, ?)",
            (chat_id, sender_id, int(is_twin), int(time.time()), text),
        )


async def recent(db: Database, chat_id: int, limit: int = 100) -> list[HistoryRow]:
    """The last `limit` messages, oldest first, shaped like `messages.recent` rows: the
    twin is the owner there."""
    rows = await db.fetchall(
        "SELECT sender_id, is_twin, date, text FROM bot_messages "
        "WHERE chat_id = ? ORDER BY id DESC LIMIT ?",
        (chat_id, limit),
    )
    return [HistoryRow(r[0], bool(r[1]), r[2], r[3]) for r in reversed(rows)]


async def count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM bot_messages")
    return int(row[0]) if row else 0
