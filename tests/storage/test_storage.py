"""The database file: creation, migrations, refusal of what it cannot read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import Database, SchemaTooNewError, StorageError, drafts, open_database
from storage.migrations import LATEST_VERSION


async def test_new_database_is_migrated_and_in_wal_mode(db_path: Path) -> None:
    db = await Database.open(db_path)
    assert await db.schema_version() == LATEST_VERSION
    assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
    tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"chats", "people", "messages", "imports", "sync_state", "settings"} <= tables
    columns = {r[1] for r in await db.fetchall("PRAGMA table_info(messages)")}
    assert {"chat_id", "message_id", "sender_id", "is_owner", "date", "text"} <= columns
    assert {r[1] for r in await db.fetchall("PRAGMA table_info(chats)")} >= {"id", "type", "title"}
    await db.close()


async def test_reopening_changes_nothing(db_path: Path) -> None:
    await (await Database.open(db_path)).close()
    before = db_path.read_bytes()
    await (await Database.open(db_path)).close()
    assert db_path.read_bytes() == before


async def test_older_database_is_migrated(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.database as database_module

    # A database written by a twin that knew only the first migration...
    monkeypatch.setattr(database_module, "LATEST_VERSION", 1)
    await (await Database.open(db_path)).close()
    # ...opened by one that knows a second.
    extra = "CREATE TABLE added_later (x INTEGER)"
    monkeypatch.setattr(database_module, "MIGRATIONS", [*database_module.MIGRATIONS, extra])
    monkeypatch.setattr(database_module, "LATEST_VERSION", LATEST_VERSION + 1)
    db = await Database.open(db_path)
    assert await db.schema_version() == LATEST_VERSION + 1
    assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'adapters'")
    assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'added_later'")
    await db.close()


async def test_failed_migration_leaves_the_version(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.database as database_module

    await (await Database.open(db_path)).close()
    broken = "CREATE TABLE half_done (x INTEGER); THIS IS NOT SQL"
    monkeypatch.setattr(database_module, "MIGRATIONS", [*database_module.MIGRATIONS, broken])
    monkeypatch.setattr(database_module, "LATEST_VERSION", LATEST_VERSION + 1)
    with pytest.raises(StorageError, match=r"migration to schema version .* failed.*syntax error"):
        await Database.open(db_path)
    monkeypatch.undo()
    db = await Database.open(db_path)
    assert await db.schema_version() == LATEST_VERSION
    assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'half_done'") is None
    await db.close()


async def test_newer_schema_is_refused(db_path: Path) -> None:
    await (await Database.open(db_path)).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (LATEST_VERSION + 5,))
    with pytest.raises(SchemaTooNewError, match="newer than this twin"):
        await Database.open(db_path)


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""])
async def test_foreign_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    if content:
        with pytest.raises(StorageError, match="not a twin database"):
            await Database.open(path)
    else:  # an empty file is a valid empty SQLite database: it becomes a twin one
        await (await Database.open(path)).close()


async def test_other_sqlite_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE foreign_table (x)")
    with pytest.raises(StorageError, match="not a twin database"):
        await Database.open(path)


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.execute("INSERT INTO chats (id, type, title) VALUES (1, 'personal_chat', 'x')")
            raise RuntimeError("boom")
    assert await db.fetchone("SELECT COUNT(*) FROM chats") == (0,)


async def test_a_new_file_is_removed_when_the_command_fails(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with pytest.raises(RuntimeError):
        async with open_database(path):
            raise RuntimeError("boom")
    assert not any(tmp_path.iterdir())


def test_blocking_database_keeps_one_connection_across_calls(tmp_path: Path) -> None:
    from storage import BlockingDatabase
    from storage import settings as settings_table

    path = tmp_path / "twin.db"
    with BlockingDatabase(path, create=True) as store:
        connection = store.db.conn
        store.run(lambda db: settings_table.put(db, "k", 1))
        assert store.run(lambda db: settings_table.get(db, "k")) == 1
        assert store.db.conn is connection
    with pytest.raises(RuntimeError), BlockingDatabase(tmp_path / "new.db", create=True):
        raise RuntimeError("the work failed")
    assert not (tmp_path / "new.db").exists()  # a file it made for failed work is gone


async def test_a_discard_at_an_older_revision_leaves_the_newer_draft(db: Database) -> None:
    """The guard holds in the one UPDATE: a redraft landing between the owner's tap on an
    old card and the discard cannot be dropped."""
    draft_id = await drafts.create(db, 2000, 1, "привет", "prompt", "первый черновик")
    assert await drafts.redraft(db, draft_id, 2, "а где ключи?", "prompt", "второй")
    assert not await drafts.discard(db, draft_id, revision=0)
    kept = await drafts.get(db, draft_id)
    assert kept is not None and (kept.status, kept.revision) == ("pending", 1)
    assert await drafts.discard(db, draft_id, revision=1)
    assert (await drafts.get(db, draft_id)).status == "discarded"  # type: ignore[union-attr]
