"""The `drafts` table: replies the twin drafted for the owner's real chats.

A persisted state machine (see migration 4): every transition is one UPDATE guarded by
the state it leaves, so a double tap, a restart or a race between the owner's answer
and a button never moves a draft twice.
"""

from __future__ import annotations

import secrets
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
    revision: int  # grows with every redraft: a card's buttons name the one they show


@dataclass(frozen=True)
class Part:
    """One message of a reply being sent as the owner."""

    draft_id: int
    part: int
    text: str
    random_id: int  # Telegram ignores a second send with the same random id
    message_id: int | None  # None: not known to have gone out yet


_COLUMNS = (
    "id, chat_id, status, incoming_message_id, incoming_text, prompt, draft_text, final_text, "
    "card_message_id, sent_message_id, via, created, updated, decided, revision"
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
    async with db.transaction():
        return await db.insert(
            "INSERT INTO drafts (chat_id, status, incoming_message_id, incoming_text, prompt, "
            "draft_text, created, updated) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?)",
            (chat_id, incoming_message_id, incoming, prompt, text, now, now),
        )


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


async def _move(
    db: Database,
    draft_id: int,
    from_status: str,
    revise: bool = False,
    revision: int | None = None,
    **fields: Any,
) -> bool:
    """One guarded transition; False if the draft was not in `from_status` (or, given
    `revision`, no longer at that revision). `revise` makes it a new revision of the
    draft (its text changed)."""
    fields["updated"] = int(time.time())
    if revise:
        fields["revised"] = fields["updated"]
    assignments = ", ".join(f"{name} = ?" for name in fields)
    if revise:
        assignments += ", revision = revision + 1"
    where, values = "id = ? AND status = ?", [draft_id, from_status]
    if revision is not None:
        where += " AND revision = ?"
        values.append(revision)
    async with db.transaction():
        changed = await db.execute(
            f"UPDATE drafts SET {assignments} WHERE {where}", (*fields.values(), *values)
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
    """A newer draft for the same pending decision: a new message came (Regenerate is
    `regenerate`, which keeps the draft it replaces)."""
    return await _move(
        db,
        draft_id,
        "pending",
        revise=True,
        incoming_message_id=incoming_message_id,
        incoming_text=incoming,
        prompt=prompt,
        draft_text=text,
    )


async def regenerate(db: Database, draft: Draft, prompt: str, text: str) -> bool:
    """The owner asked for another draft instead of `draft` (the revision on his card):
    the new one replaces it, and the old one is kept as a reply he did not want. One
    transaction: no rejection without the redraft, none twice."""
    async with db.transaction():
        if not await _move(
            db,
            draft.id,
            "pending",
            revise=True,
            revision=draft.revision,
            prompt=prompt,
            draft_text=text,
        ):
            return False
        await db.execute(
            "INSERT INTO draft_rejections (draft_id, revision, prompt, text, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (draft.id, draft.revision, draft.prompt, draft.draft_text, int(time.time())),
        )
    return True


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
    """Nothing of the send went out: pending again. The planned parts stay: sending the
    same text again reuses their random ids, so Telegram still sends each only once."""
    return await _move(db, draft_id, "sending", status="pending", final_text=None, via=None)


async def plan_parts(db: Database, draft_id: int, texts: list[str]) -> list[Part]:
    """The messages of a send, each with its random id, written before the first goes
    out; a send that resumes after a crash gets the parts it planned then."""
    async with db.transaction():
        planned = await parts(db, draft_id)
        if [p.text for p in planned] == texts:
            return planned
        if any(p.message_id is not None for p in planned):
            raise RuntimeError(f"draft {draft_id} is half sent; it cannot be planned anew")
        await db.execute("DELETE FROM draft_parts WHERE draft_id = ?", (draft_id,))
        await db.executemany(
            "INSERT INTO draft_parts (draft_id, part, text, random_id) VALUES (?, ?, ?, ?)",
            [(draft_id, i, text, secrets.randbits(63)) for i, text in enumerate(texts)],
        )
        return await parts(db, draft_id)


async def parts(db: Database, draft_id: int) -> list[Part]:
    rows = await db.fetchall(
        "SELECT draft_id, part, text, random_id, message_id FROM draft_parts "
        "WHERE draft_id = ? ORDER BY part",
        (draft_id,),
    )
    return [Part(*row) for row in rows]


async def part_sent(db: Database, part: Part, message_id: int) -> None:
    async with db.transaction():
        await db.execute(
            "UPDATE draft_parts SET message_id = ? WHERE draft_id = ? AND part = ?",
            (message_id, part.draft_id, part.part),
        )


async def discard(db: Database, draft_id: int, revision: int | None = None) -> bool:
    """Pending -> discarded; given `revision`, only the draft the owner saw at it (an
    older card's Discard must not drop a newer draft)."""
    return await _move(
        db, draft_id, "pending", revision=revision, status="discarded", decided=int(time.time())
    )


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
