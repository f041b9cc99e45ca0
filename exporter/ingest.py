"""The one way chats enter the database, whatever brings them: a Desktop export
(`twin import`), a sync of the account (`twin sync`), or the live userbot.

A database holds one account's chats: the first source that names the owner stores
it, and a source that names someone else is refused before it writes anything. Rows
are upserted (new messages stored, newer edits applied), and each import or sync is
recorded for /status.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from storage import Database
from storage import imports as imports_table
from storage import messages as messages_table
from storage import settings as settings_table
from storage.rows import MessageRow


class OwnerError(Exception):
    """Whose account the data is cannot be decided, or contradicts what is known."""


async def stored_owner(db: Database) -> int | None:
    return await settings_table.get(db, settings_table.OWNER_ID)


async def claim_owner(db: Database, owner_id: int, source: str) -> None:
    """Store `owner_id` as the database's owner, or check it is the stored one."""
    stored = await stored_owner(db)
    if stored is None:
        await settings_table.put(db, settings_table.OWNER_ID, owner_id)
    elif stored != owner_id:
        raise OwnerError(owner_mismatch(stored, owner_id, source))


def owner_mismatch(stored: int, claimed: int, source: str) -> str:
    return (
        f"this database holds the chats of user {stored}, but {source} is user {claimed}; "
        "import another account's chats into another database (--db)"
    )


async def store(db: Database, rows: Sequence[MessageRow]) -> tuple[int, int]:
    """Upsert rows: (new, updated)."""
    if not rows:
        return 0, 0
    return await messages_table.upsert(db, rows)


async def record(
    db: Database,
    source: str,
    path: str | None,
    started: float,
    chats: int,
    new: int,
    updated: int,
    duplicates: int = 0,
    skipped: Mapping[str, int] | None = None,
) -> None:
    """One line in the import log, for /status and for debugging."""
    await imports_table.record(
        db,
        imports_table.ImportRecord(
            source=source,
            path=path,
            started=int(started),
            finished=int(time.time()),
            chats=chats,
            new=new,
            updated=updated,
            duplicates=duplicates,
            skipped=dict(skipped or {}),
        ),
    )
