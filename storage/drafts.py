"""The `drafts` table: replies the twin drafted for the owner's real chats.

A persisted state machine (see migration 4): every transition is one UPDATE guarded by
the state it leaves, so a double tap, a restart or a race between the owner's answer
and a button never moves a draft twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from storage.database import Database

OPEN = ("pending", "sending")


@dataclass(frozen=True)
class Draft:
    id: int
    chat_id: int
    status: str
    incoming_message_id: int | None
    incoming_text: str
    prompt: str
    draft_text: str
    final_text: str | None
    card_message_id: int | None
    sent_message_id: int | None
    via: str | None
    created: int
    updated: int
    decided: int | None


_COLUMNS = (
    "id, chat_id, status, incoming_message_id, incoming_text, prompt, draft_text, final_text, "
    "card_message_id, sent_message_id, via, created, updated, decided"
)


def _draft(row: tuple[Any, ...] | None) -> Draft | None:
    return None if row is None else Draft(*row)


async def create(
    db: Database,
    chat_id: int,
    incoming_message_id: int | None,
    incoming: str,
    prompt: str,
    text: str,
) -> int:
    now = int(time.time())
    async with (
        db.transaction(),
        db.conn.execute(
            "INSERT INTO drafts (chat_id, status, incoming_message_id, incoming_text, prompt, "
            "draft_text, created, updated) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?)",
            (chat_id, incoming_message_id, incoming, prompt, text, now, now),
        ) as cursor,
    ):
        return int(cursor.lastrowid or 0)


async def get(db: Database, draft_id: int) -> Draft | None:
    return _draft(await db.fetchone(f"SELECT {_COLUMNS} FROM drafts WHERE id = ?", (draft_id,)))


async def open_for_chat(db: Database, chat_id: int) -> Draft | None:
    return _draft(
        await db.fetchone(
            f"SELECT {_COLUMNS} FROM drafts WHERE chat_id = ? AND status IN {OPEN}", (chat_id,)
        )
    )


async def with_status(db: Database, status: str) -> list[Draft]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM drafts WHERE status = ? ORDER BY id", (status,)
    )
    return [Draft(*row) for row in rows]


async def _move(db: Database, draft_id: int, from_status: str, **fields: Any) -> bool:
    """One guarded transition; False if the draft was not in `from_status`."""
    fields["updated"] = int(time.time())
    assignments = ", ".join(f"{name} = ?" for name in fields)
    async with db.transaction():
        changed = await db.execute(
            f"UPDATE drafts SET {assignments} WHERE id = ? AND status = ?",
            (*fields.values(), draft_id, from_status),
        )
    return changed == 1


async def set_card(db: Database, draft_id: int, card_message_id: int) -> bool:
    return await _move(db, draft_id, "pending", card_message_id=card_message_id)


async def redraft(
    db: Database,
    draft_id: int,
    incoming_message_id: int | None,
    incoming: str,
    prompt: str,
    text: str,
) -> bool:
    """A newer draft for the same pending decision (a new message came, or Regenerate)."""
    return await _move(
        db,
        draft_id,
        "pending",
        incoming_message_id=incoming_message_id,
        incoming_text=incoming,
        prompt=prompt,
        draft_text=text,
    )


async def claim_for_sending(db: Database, draft_id: int, final_text: str, via: str) -> bool:
    """The intent to send, recorded before sending: only one claim can win."""
    return await _move(db, draft_id, "pending", status="sending", final_text=final_text, via=via)


async def mark_sent(db: Database, draft_id: int, sent_message_id: int) -> bool:
    draft = await get(db, draft_id)
    if draft is None:
        return False
    status = "edited_sent" if draft.final_text != draft.draft_text else "sent"
    return await _move(
        db,
        draft_id,
        "sending",
        status=status,
        sent_message_id=sent_message_id,
        decided=int(time.time()),
    )


async def unclaim(db: Database, draft_id: int) -> bool:
    """The send did not happen (found at reconciliation): pending again."""
    return await _move(db, draft_id, "sending", status="pending", final_text=None, via=None)


async def discard(db: Database, draft_id: int) -> bool:
    return await _move(db, draft_id, "pending", status="discarded", decided=int(time.time()))


async def expire(db: Database, draft_id: int) -> bool:
    """The owner answered the chat themselves first."""
    return await _move(db, draft_id, "pending", status="expired", decided=int(time.time()))


async def decided_since(db: Database, since: int) -> list[Draft]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM drafts WHERE decided >= ? "
        "AND status IN ('sent', 'edited_sent', 'discarded') ORDER BY id",
        (since,),
    )
    return [Draft(*row) for row in rows]


async def edited(db: Database) -> list[Draft]:
    """Drafts the owner corrected before sending: (draft, final) preference pairs."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM drafts WHERE status = 'edited_sent' ORDER BY id"
    )
    return [Draft(*row) for row in rows]
