"""The `messages` table: every message of every chat, keyed by (chat_id, message_id)."""

from __future__ import annotations

from collections.abc import Sequence

from storage.database import Database
from storage.rows import HistoryRow, MessageRow

COLUMNS = MessageRow._fields

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
    edits = [
        (r.text, r.media, r.media_detail, r.edited, r.chat_id, r.message_id, r.edited)
        for r in rows
        if r.edited is not None
    ]
    if not edits:
        return 0
    return await db.executemany(_APPLY_EDIT, edits)


async def upsert(db: Database, rows: Sequence[MessageRow]) -> tuple[int, int]:
    """Store new rows and newer edits of stored ones: (new, updated). Every ingestion
    path (export import, sync, live messages) writes through here."""
    return await insert_new(db, rows), await apply_edits(db, rows)


async def mark_by_twin(db: Database, chat_id: int, message_id: int) -> None:
    """The twin sent this message by itself (auto mode): not the owner's words to learn."""
    await db.execute(
        "UPDATE messages SET by_twin = 1 WHERE chat_id = ? AND message_id = ?",
        (chat_id, message_id),
    )


async def mark_owner(db: Database, owner_id: int, chat_ids: Sequence[int]) -> None:
    """Recompute `is_owner` in these chats once the owner became known after the insert."""
    await db.executemany(
        "UPDATE messages SET is_owner = (sender_id IS ?) WHERE chat_id = ?",
        [(owner_id, chat_id) for chat_id in chat_ids],
    )


async def count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM messages")
    return int(row[0]) if row else 0


async def recent(db: Database, chat_id: int, limit: int = 200) -> list[HistoryRow]:
    """The last `limit` messages of a chat, oldest first: the history a reply is
    written against."""
    rows = await db.fetchall(
        "SELECT sender_id, is_owner, date, text, media, media_detail FROM messages "
        "WHERE chat_id = ? ORDER BY message_id DESC LIMIT ?",
        (chat_id, limit),
    )
    return [HistoryRow._make(row) for row in reversed(rows)]


async def owner_count_since(db: Database, since: int) -> int:
    """How many messages the owner wrote after `since` (unix seconds)."""
    row = await db.fetchone(
        "SELECT COUNT(*) FROM messages WHERE is_owner = 1 AND date > ?", (since,)
    )
    return int(row[0]) if row else 0
