"""An import's rows, staged in a file of their own before they join the database.

Parsing a large export takes a while; holding the database's write lock all that time
would stop the bot, the userbot and a training run's heartbeat (SQLite lets one writer
in at a time). So an import writes its rows here first, into a private scratch file
with no index and no journal, and then merges them into `messages` in one short
transaction: the import stays whole or nothing, and other writers wait seconds, not
the length of the import.

The rows are written by a process of its own. Writing them costs about as much as
parsing them, and in a thread of this process the two took turns on one core (a
million messages: 17 s at 99 % of one CPU); in a process of their own they run side by
side (about 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite

from storage.database import Database
from storage.errors import StorageError
from storage.messages import COLUMNS
from storage.rows import MessageRow

_PREFIX = ".import-"
_COLUMN_LIST = ", ".join(COLUMNS)
# The writer's command: this very module, imported from the folder it is in (first on
# the path, so that a `storage` package wherever the user runs twin cannot stand in).
_WRITER = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from storage.staging import _write_rows; _write_rows(sys.argv[2])"
)
_INSERT = f"INSERT INTO messages ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(COLUMNS))})"


class Staging:
    """The scratch file of one import: rows go in, then `merge` moves them over."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, writer: _Writer) -> None:
        self.conn, self.path = conn, path
        self._writer = writer

    async def add(self, rows: Sequence[MessageRow]) -> None:
        """Hand a batch to the writer process. It waits only while the writer is a
        pipe's worth of rows behind, so memory stays bounded. Sent as plain tuples: a
        NamedTuple pickles ten times slower."""
        await asyncio.to_thread(self._writer.send, list(map(tuple, rows)))

    async def finish(self) -> None:
        """Wait until every batch handed over is in the file."""
        await asyncio.to_thread(self._writer.finish)

    async def sender_counts(self) -> dict[int, int]:
        """How many staged messages each sender wrote (to name the candidates when the
        owner cannot be told)."""
        async with self.conn.execute(
            "SELECT sender_id, COUNT(*) FROM messages WHERE sender_id IS NOT NULL "
            "GROUP BY sender_id ORDER BY COUNT(*) DESC"
        ) as cursor:
            return {sender: count async for sender, count in cursor}


class _Writer:
    """The writer process: batches go in through its stdin, one word comes back at the end.

    A command of its own (not multiprocessing): it needs nothing of this process, and
    whatever program imports twin's storage need not guard its main module. When this
    process dies, however it dies, the writer reads the end of its input and exits; its
    stderr is kept, so a Ctrl-C that reaches both prints no second traceback."""

    def __init__(self, path: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(Path(__file__).resolve().parents[1]), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def send(self, rows: object) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            pickle.dump(rows, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._raise_failure()

    def finish(self) -> None:
        self.send(None)
        self._raise_failure(expected=True)

    def _raise_failure(self, expected: bool = False) -> None:
        """The writer's last word: None when all went in, or why it stopped."""
        assert self._process.stdout is not None and self._process.stderr is not None
        try:
            error = pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError):
            code = self._process.wait()
            last = self._process.stderr.read().decode(errors="replace").strip().splitlines()
            error = f"the writer process ended with code {code}" + (f": {last[-1]}" if last else "")
        if error is not None or not expected:
            raise StorageError(f"cannot stage the import's rows: {error}")

    def stop(self) -> None:
        """End the process, done or not (a failed import discards its rows)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout, self._process.stderr):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]


def _write_rows(path: str) -> None:
    """The writer process: each batch in a transaction of its own, until None comes (all
    written: answer None) or the input ends (the importer is gone: stop)."""
    rows_in, answer = sys.stdin.buffer, sys.stdout.buffer
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # per connection: the importer's is OFF too
        conn.execute("PRAGMA synchronous = OFF")
        while (rows := pickle.load(rows_in)) is not None:
            conn.execute("BEGIN")
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        pickle.dump(None, answer)
    except EOFError:
        pass
    except sqlite3.Error as err:
        pickle.dump(str(err), answer)
    finally:
        conn.close()
        answer.flush()


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
            writer = await asyncio.to_thread(_Writer, path)
            try:
                yield Staging(conn, path, writer)
            finally:
                await asyncio.to_thread(writer.stop)
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
