"""An import's rows, staged in a file of their own before they join the database.

Parsing a large export takes a while; holding the database's write lock all that time
would stop the bot, the userbot and a training run's heartbeat (SQLite lets one writer
in at a time). So an import writes its rows here first, into a private scratch file
with no index and no journal, and then merges them into `messages` in one short
transaction: the import stays whole or nothing, and other writers wait seconds, not
the length of the import.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite

from storage.database import Database
from storage.messages import COLUMNS
from storage.rows import MessageRow

_PREFIX = ".import-"
_COLUMN_LIST = ", ".join(COLUMNS)


class Staging:
    """The scratch file of one import: rows go in, then `merge` moves them over."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn, self.path = conn, path

    async def add(self, rows: Sequence[MessageRow]) -> None:
        """One transaction per batch (a commit per row would cost more than the rows); no
        journal, nothing to undo: a failed import just removes the file."""
        await self.conn.execute("BEGIN")
        await self.conn.executemany(
            f"INSERT INTO messages ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(COLUMNS))})",
            rows,
        )
        await self.conn.execute("COMMIT")

    async def sender_counts(self) -> dict[int, int]:
        """How many staged messages each sender wrote (to name the candidates when the
        owner cannot be told)."""
        async with self.conn.execute(
            "SELECT sender_id, COUNT(*) FROM messages WHERE sender_id IS NOT NULL "
            "GROUP BY sender_id ORDER BY COUNT(*) DESC"
        ) as cursor:
            return {sender: count async for sender, count in cursor}


@contextlib.asynccontextmanager
async def staging(db: Database) -> AsyncIterator[Staging]:
    """A scratch file beside the database (0600, removed afterwards whatever happens;
    one left by a killed import is removed by the next)."""
    folder = db.path.parent
    for old in folder.glob(f"{_PREFIX}*.db"):
        pid = old.stem.removeprefix(_PREFIX).split("-")[0]
        if not (pid.isdigit() and _running(int(pid))):
            old.unlink(missing_ok=True)
    handle, name = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", suffix=".db", dir=folder)
    os.close(handle)
    path = Path(name)
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode = OFF")
            await conn.execute("PRAGMA synchronous = OFF")
            await conn.execute(
                "CREATE TABLE messages (chat_id INTEGER, message_id INTEGER, sender_id INTEGER, "
                "is_owner INTEGER, date INTEGER, text TEXT, reply_to INTEGER, "
                "forwarded_from TEXT, media TEXT, media_detail TEXT, edited INTEGER)"
            )
            yield Staging(conn, path)
        finally:
            await conn.close()
    finally:
        path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def attached(db: Database, staged: Staging) -> AsyncIterator[None]:
    """The staged rows visible to `db` as `staged.messages`, for `merge`. Attach before
    the transaction that merges (SQLite cannot attach inside one)."""
    async with db.attached(staged.path, "staged"):
        yield


async def merge(db: Database) -> tuple[int, int]:
    """Inside a transaction, with the staged rows attached: new rows stored, newer edits
    applied (never an older copy over a newer one). (new, updated)."""
    new = await db.execute(
        f"INSERT OR IGNORE INTO messages ({_COLUMN_LIST}) "
        f"SELECT {_COLUMN_LIST} FROM staged.messages"  # in export order: each chat ascending
    )
    updated = await db.execute(
        "UPDATE messages SET text = s.text, media = s.media, media_detail = s.media_detail, "
        "edited = s.edited FROM staged.messages AS s "
        "WHERE messages.chat_id = s.chat_id AND messages.message_id = s.message_id "
        "AND s.edited IS NOT NULL AND (messages.edited IS NULL OR messages.edited < s.edited)"
    )
    return new, updated


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
