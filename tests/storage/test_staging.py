"""The staging file's writer process: it writes every row, says why when it cannot, and
never outlives the import it serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import StorageError, open_database
from storage.rows import MessageRow
from storage.staging import staging
from tests.conftest import ROOT
from tests.processes import WAIT, all_end
from tests.synthetic_export import write_export

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="finds processes in /proc")

ROWS = [
    MessageRow(7, i, 1, True, 1_700_000_000 + i, f"m{i}", None, None, None, None, None)
    for i in range(1, 2_001)
]


async def test_every_row_handed_over_is_in_the_file(db_path: Path) -> None:
    async with open_database(db_path) as db, staging(db) as staged:
        for start in range(0, len(ROWS), 500):
            await staged.add(ROWS[start : start + 500])
        await staged.finish()
        assert await staged.sender_counts() == {1: len(ROWS)}


async def test_a_storage_package_where_twin_runs_cannot_stand_in_for_the_writer(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's own project folder may hold a `storage` package: the writer, started
    there, still imports twin's."""
    theirs = tmp_path / "project" / "storage"
    theirs.mkdir(parents=True)
    (theirs / "__init__.py").write_text("raise ImportError('not twin')\n")
    monkeypatch.chdir(theirs.parent)
    async with open_database(db_path) as db, staging(db) as staged:
        await staged.add(ROWS)
        await staged.finish()
        assert await staged.sender_counts() == {1: len(ROWS)}


async def test_a_writer_that_cannot_write_says_why(db_path: Path) -> None:
    async with open_database(db_path) as db, staging(db) as staged:
        await staged.conn.execute("DROP TABLE messages")
        await staged.add(ROWS[:10])
        with pytest.raises(StorageError, match="cannot stage the import's rows: no such table"):
            await staged.finish()


async def test_a_writer_that_died_is_an_error_not_a_hang(db_path: Path) -> None:
    async with open_database(db_path) as db, staging(db) as staged:
        (writer,) = _writers(os.getpid())
        os.kill(writer, signal.SIGKILL)
        with pytest.raises(StorageError, match="ended with code -9"):
            for _ in range(100):  # the pipe takes a few batches before it breaks
                await staged.add(ROWS)
            await staged.finish()


SLEEPING_IMPORTER = """
import asyncio, sys
from pathlib import Path
from storage import open_database
from storage.staging import staging

async def main():
    async with open_database(Path(sys.argv[1])) as db, staging(db):
        print("staging", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


def test_the_writer_ends_when_the_importer_is_killed(db_path: Path) -> None:
    importer = subprocess.Popen(
        [sys.executable, "-c", SLEEPING_IMPORTER, str(db_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert importer.stdout is not None and importer.stdout.readline() == "staging\n"
        (writer,) = _writers(importer.pid)
    finally:
        importer.kill()
        importer.wait()
    assert all_end([writer]), "the writer process outlived the import"


def test_ctrl_c_stops_an_import_with_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the command, the writer too: the
    user reads one line, not the writer's traceback as well, and no file stays behind."""
    export = write_export(tmp_path / "result.json", 200_000, chats=2)
    db_path = tmp_path / "twin.db"
    # A terminal's job hears Ctrl-C; a test run started in the background (`cmd &`) has
    # SIGINT ignored, and an ignored signal stays ignored in every child: the import
    # would run to its end. The child gets the default, as a terminal's job has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        importer = subprocess.Popen(
            [sys.executable, "-m", "twin", "import", str(export), "--db", str(db_path)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group of its own, as a terminal's job is
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + WAIT
        while not (writers := _writers(importer.pid)) and importer.poll() is None:
            assert time.monotonic() < deadline, "no writer process started"
            time.sleep(0.05)
        time.sleep(0.5)  # the writer is past its start-up, blocked reading rows
        os.killpg(importer.pid, signal.SIGINT)
        _, stderr = importer.communicate(timeout=WAIT)
    finally:
        if importer.poll() is None:
            importer.kill()
    assert writers, "the import ended before the test could interrupt it"
    assert importer.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "twin: interrupted"
    assert "Traceback" not in stderr
    assert all_end(writers)
    assert not list(tmp_path.glob(".import-*"))


def _writers(parent: int) -> list[int]:
    """The staging writers `parent` started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        ours = any(b"storage.staging" in part for part in command)
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and ours:
            found.append(int(entry.name))
    return found
