"""The `chats` table: one row per Telegram chat, whatever its type."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True, slots=True)
class Chat:
    id: int  # marked peer id: user N, basic group -N, channel -100N (exporter.peers)
    type: str
    title: str | None


async def upsert(db: Database, chat: Chat) -> None:
    """Store a chat; a newer title replaces the old one (people rename chats). A stored
    chat's type never changes: what it was first stored as (a bot, Saved Messages)
    decides whether it may ever become training data, and no later source overrules it."""
    async with db.transaction():
        await db.execute(
            "INSERT INTO chats (id, type, title) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET title = COALESCE(excluded.title, chats.title)",
            (chat.id, chat.type, chat.title),
        )


async def count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM chats")
    return int(row[0]) if row else 0


async def mode(db: Database, chat_id: int) -> str | None:
    """A chat's draft mode (draft, auto, off); None: the default."""
    row = await db.fetchone("SELECT mode FROM chats WHERE id = ?", (chat_id,))
    return row[0] if row else None


async def set_mode(db: Database, chat_id: int, mode: str | None) -> bool:
    async with db.transaction():
        return await db.execute("UPDATE chats SET mode = ? WHERE id = ?", (mode, chat_id)) == 1


async def get(db: Database, chat_id: int) -> Chat | None:
    row = await db.fetchone("SELECT id, type, title FROM chats WHERE id = ?", (chat_id,))
    return Chat(*row) if row else None


async def recent_personal(db: Database, limit: int = 8) -> list[tuple[Chat, str | None]]:
    """Personal chats with the newest messages first, with their modes (for a picker)."""
    rows = await db.fetchall(
        "SELECT c.id, c.type, c.title, c.mode FROM chats c "
        "WHERE c.type = 'personal_chat' ORDER BY "
        "(SELECT MAX(date) FROM messages m WHERE m.chat_id = c.id) DESC LIMIT ?",
        (limit,),
    )
    return [(Chat(r[0], r[1], r[2]), r[3]) for r in rows]
