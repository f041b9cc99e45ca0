"""The `messages` table: every message of every chat, keyed by (chat_id, message_id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.database import Database

# The order of a message row everywhere in twin (importers build plain tuples in this
# order: a million of them is measurably cheaper than a million objects).
COLUMNS = (
    "chat_id",
    "message_id",
    "sender_id",
    "is_owner",
    "date",
    "text",
    "reply_to",
    "forwarded_from",
    "media",
    "media_detail",
    "edited",
)
MessageRow = tuple[Any, ...]

_INSERT = (
    f"INSERT OR IGNORE INTO messages ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
# A later export (or sync) of an edited message carries the newer text: take it, but
# never let an older copy overwrite a newer one.
_APPLY_EDIT = (
    "UPDATE messages SET text = ?, media = ?, media_detail = ?, edited = ? "
    "WHERE chat_id = ? AND message_id = ? AND (edited IS NULL OR edited < ?)"
)


async def insert_new(db: Database, rows: Sequence[MessageRow]) -> int:
    """Insert rows whose key is not stored yet; return how many were new."""
    return await db.executemany(_INSERT, rows)


async def apply_edits(db: Database, rows: Sequence[MessageRow]) -> int:
    """Update stored messages from edited rows newer than the stored copy; return how many."""
    edits = [(r[5], r[8], r[9], r[10], r[0], r[1], r[10]) for r in rows if r[10] is not None]
    if not edits:
        return 0
    return await db.executemany(_APPLY_EDIT, edits)


async def mark_owner(db: Database, owner_id: int, chat_ids: Sequence[int]) -> None:
    """Recompute `is_owner` in these chats once the owner became known after the insert."""
    await db.executemany(
        "UPDATE messages SET is_owner = (sender_id IS ?) WHERE chat_id = ?",
        [(owner_id, chat_id) for chat_id in chat_ids],
    )


async def count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM messages")
    return int(row[0]) if row else 0


async def recent(db: Database, chat_id: int, limit: int = 200) -> list[tuple[Any, ...]]:
    """The last `limit` messages of a chat, oldest first, as (sender_id, is_owner, date,
    text, media, media_detail): the history a reply is written against."""
    rows = await db.fetchall(
        "SELECT sender_id, is_owner, date, text, media, media_detail FROM messages "
        "WHERE chat_id = ? ORDER BY message_id DESC LIMIT ?",
        (chat_id, limit),
    )
    return rows[::-1]


async def owner_count_since(db: Database, since: int) -> int:
    """How many messages the owner wrote after `since` (unix seconds)."""
    row = await db.fetchone(
        "SELECT COUNT(*) FROM messages WHERE is_owner = 1 AND date > ?", (since,)
    )
    return int(row[0]) if row else 0
