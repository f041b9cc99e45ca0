"""The SQLite connection: WAL mode, migrations on open, explicit transactions.

Every write in twin goes through `Database.transaction()`, so a failure anywhere in a
command rolls the whole command back and the file stays as it was. One connection is
shared by every task of a process (the bot, the userbot, the scheduler), so the
transactions are serialized by a lock: a task's write can never land inside another
task's transaction and be rolled back with it. A write outside any transaction is an
error, not a silent autocommit.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.errors import SchemaTooNewError, StorageError
from storage.migrations import LATEST_VERSION, MIGRATIONS
from storage.private import private_dir, private_file

_SIDE_FILES = ("-wal", "-shm", "-journal")
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLAC"})
T = TypeVar("T")


class Database:
    """One connection to the twin database, shared by everything in a process."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        # The task whose transaction is open: it alone may write until it ends.
        self._holder: asyncio.Task[Any] | None = None

    @classmethod
    async def open(cls, path: Path) -> Database:
        path = Path(path)
        try:
            if not path.exists():
                # SQLite gives its -wal and -shm files the database's own mode.
                private_dir(path.parent)
                private_file(path)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, aiosqlite.Error) as err:
            raise StorageError(f"cannot open database {path}: {err}") from err
        db = cls(conn, path)
        try:
            try:
                await conn.execute("PRAGMA busy_timeout = 10000")
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = NORMAL")
                # 64 MiB of page cache: a large import otherwise spills to the WAL page
                # by page and inserts run at half speed.
                await conn.execute("PRAGMA cache_size = -65536")
                version = await db.schema_version()
            except aiosqlite.DatabaseError as err:
                raise StorageError(f"{path} is not a twin database: {err}") from err
            await db._migrate(version)
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self.conn.close()

    async def schema_version(self) -> int:
        row = await self.fetchone(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
        if row is None:
            has_tables = await self.fetchone("SELECT 1 FROM sqlite_master LIMIT 1")
            if has_tables:
                raise StorageError(f"{self.path} is an SQLite file but not a twin database")
            return 0
        row = await self.fetchone("SELECT MAX(version) FROM schema_version")
        return int(row[0] or 0)

    async def _migrate(self, version: int) -> None:
        if version > LATEST_VERSION:
            raise SchemaTooNewError(
                f"{self.path} has schema version {version}, newer than this twin knows "
                f"({LATEST_VERSION}); upgrade twin to open it"
            )
        for number in range(version + 1, LATEST_VERSION + 1):
            # executescript commits any open transaction first, so the script carries
            # its own BEGIN/COMMIT: each migration lands whole or not at all.
            script = (
                "BEGIN IMMEDIATE;\n"
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, applied INTEGER NOT NULL);\n"
                f"{MIGRATIONS[number - 1]};\n"
                "INSERT INTO schema_version (version, applied) "
                f"VALUES ({number}, {int(time.time())});\n"
                "COMMIT;"
            )
            try:
                await self.conn.executescript(script)
            except BaseException as err:
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                if isinstance(err, aiosqlite.Error):
                    raise StorageError(
                        f"{self.path}: migration to schema version {number} failed: {err}"
                    ) from err
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (including cancel).

        Other tasks wait for the transaction to end; the same task opening another one
        inside it joins it (a storage function that writes in a transaction of its own
        can be called inside a caller's). IMMEDIATE takes SQLite's write lock up front,
        so two processes queue on busy_timeout instead of failing half-way.
        """
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            yield
            return
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            self._holder = task
            try:
                yield
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")
            finally:
                self._holder = None

    @asynccontextmanager
    async def attached(self, path: Path, alias: str) -> AsyncIterator[None]:
        """Another database file visible as `alias` to this connection. SQLite attaches
        and detaches only outside a transaction: both wait for the lock."""
        async with self._lock:
            await self.conn.execute("ATTACH DATABASE ? AS " + alias, (str(path),))
        try:
            yield
        finally:
            async with self._lock:
                await self.conn.execute("DETACH DATABASE " + alias)

    def _check_write(self, sql: str) -> None:
        if sql.lstrip()[:6].upper() in _WRITES and self._holder is not asyncio.current_task():
            raise RuntimeError(f"a write outside a transaction: {sql.split(None, 3)[:3]}")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        self._check_write(sql)
        async with self.conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one INSERT; return the new row's id."""
        self._check_write(sql)
        async with self.conn.execute(sql, params) as cursor:
            return int(cursor.lastrowid or 0)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        self._check_write(sql)
        async with self.conn.executemany(sql, rows) as cursor:
            return cursor.rowcount

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        async with self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())


@asynccontextmanager
async def open_database(
    path: Path, *, create: bool = True, discard_if_new: bool = False
) -> AsyncIterator[Database]:
    """Open (creating and migrating if needed) and always close.

    If the file did not exist and the body fails, the new file is removed again: a
    command that errors leaves the disk as it found it. `discard_if_new`: a missing
    database is made empty in a temporary folder and removed after (a dry run writes
    nothing where the database would be); `create=False` refuses a missing file
    (commands that only read have nothing to read in a new one).
    """
    path = Path(path)
    existed = path.exists()
    if not existed and not create:
        raise StorageError(f"no database at {path}: import your chats first (twin import)")
    if not existed and discard_if_new:
        # Nothing to compare with: an empty database in a private temporary folder, so
        # that not even a folder appears where the database would be.
        with tempfile.TemporaryDirectory(prefix="twin-") as scratch:
            async with open_database(Path(scratch) / path.name) as db:
                yield db
        return
    db = await Database.open(path)
    failed = False
    try:
        yield db
    except BaseException:
        failed = True
        raise
    finally:
        await db.close()
        if not existed and failed:
            for suffix in ("", *_SIDE_FILES):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def with_database(
    path: Path, action: Callable[[Database], Awaitable[T]], create: bool = False
) -> T:
    """Run one database action from synchronous code (a CLI command that needs one)."""
    with BlockingDatabase(path, create=create) as db:
        return db.run(action)


class BlockingDatabase:
    """One connection and one event loop for synchronous code that talks to the
    database again and again: a training run (its heartbeat writes every few seconds),
    `twin chat`. Each `run` awaits one action on the same loop and connection.

    Like `open_database`, a file this opened new is removed again if the work fails.
    """

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self._runner = asyncio.Runner()
        self._context = open_database(path, create=create)
        try:
            self.db = self._runner.run(self._context.__aenter__())
        except BaseException:
            self._runner.close()
            raise

    def run(self, action: Callable[[Database], Awaitable[T]]) -> T:
        return self._runner.run(action(self.db))

    def close(self, error: BaseException | None = None) -> None:
        try:
            if error is None:
                self._runner.run(self._context.__aexit__(None, None, None))
            else:
                self._runner.run(self._context.__aexit__(type(error), error, None))
        finally:
            self._runner.close()

    def __enter__(self) -> BlockingDatabase:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: object) -> None:
        self.close(error)
