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
    """Store a chat; a newer title replaces the old one (people rename chats)."""
    await db.execute(
        "INSERT INTO chats (id, type, title) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET type = excluded.type, "
        "title = COALESCE(excluded.title, chats.title)",
        (chat.id, chat.type, chat.title),
    )


async def count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM chats")
    return int(row[0]) if row else 0
