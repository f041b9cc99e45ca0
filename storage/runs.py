"""The `training_runs` table: every training run, and the lock that keeps them apart.

A partial unique index allows one row with status 'running': starting a run is an
insert that fails while another runs, atomically, across processes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from storage.database import Database

log = logging.getLogger(__name__)
# A running run's process writes its heartbeat this often, whatever it is doing; a
# heartbeat older than STALE_SECONDS means the process is gone (killed, the machine
# restarted), whatever its PID says: PIDs are reused.
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0


class RunLockedError(Exception):
    """Another training run holds the lock."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__(
            f"training run {run.id} is already running (pid {run.pid}, step {run.step})"
        )
        self.run = run


@dataclass(frozen=True)
class TrainingRun:
    id: int
    trigger: str
    status: str
    pid: int | None
    host: str | None
    started: int
    finished: int | None
    heartbeat: int | None
    step: int
    total_steps: int | None
    dataset_fingerprint: str | None
    run_dir: str | None
    adapter_id: int | None
    metrics: dict[str, Any]
    error: str | None


_COLUMNS = (
    "id, trigger, status, pid, host, started, finished, heartbeat, step, total_steps, "
    "dataset_fingerprint, run_dir, adapter_id, metrics, error"
)


def _run(row: tuple[Any, ...]) -> TrainingRun:
    return TrainingRun(*row[:13], metrics=json.loads(row[13] or "{}"), error=row[14])


async def start(db: Database, trigger: str, pid: int, host: str) -> int:
    """Take the lock: a new running row. RunLockedError if one is running already."""
    now = int(time.time())
    try:
        async with db.transaction():
            return await _insert(db, trigger, pid, host, now)
    except (sqlite3.IntegrityError, aiosqlite.IntegrityError):
        held = await running(db)
        if held is None:  # finished between our insert and this read: try once more
            async with db.transaction():
                return await _insert(db, trigger, pid, host, now)
        raise RunLockedError(held) from None


async def _insert(db: Database, trigger: str, pid: int, host: str, now: int) -> int:
    return await db.insert(
        "INSERT INTO training_runs (trigger, status, pid, host, started, heartbeat) "
        "VALUES (?, 'running', ?, ?, ?, ?)",
        (trigger, pid, host, now, now),
    )


async def running(db: Database) -> TrainingRun | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM training_runs WHERE status = 'running'")
    return None if row is None else _run(row)


async def get(db: Database, run_id: int) -> TrainingRun | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM training_runs WHERE id = ?", (run_id,))
    return None if row is None else _run(row)


async def latest(db: Database, status: str | None = None) -> TrainingRun | None:
    where, params = ("WHERE status = ?", (status,)) if status else ("", ())
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM training_runs {where} ORDER BY id DESC LIMIT 1", params
    )
    return None if row is None else _run(row)


async def update(db: Database, run_id: int, **fields: Any) -> None:
    """Set columns of a run (metrics as a dict); refreshes the heartbeat."""
    fields["heartbeat"] = int(time.time())
    if "metrics" in fields:
        fields["metrics"] = json.dumps(fields["metrics"], ensure_ascii=False)
    assignments = ", ".join(f"{name} = ?" for name in fields)
    async with db.transaction():
        await db.execute(
            f"UPDATE training_runs SET {assignments} WHERE id = ?", (*fields.values(), run_id)
        )


async def finish(db: Database, run_id: int, status: str, error: str | None = None) -> None:
    await update(db, run_id, status=status, finished=int(time.time()), error=error)


async def take_over(db: Database, run_id: int, pid: int, host: str) -> None:
    """Mark an interrupted run as running again in this process (resume); takes the
    lock like `start`."""
    try:
        async with db.transaction():
            await db.execute(
                "UPDATE training_runs SET status = 'running', pid = ?, host = ?, heartbeat = ?, "
                "finished = NULL, error = NULL WHERE id = ?",
                (pid, host, int(time.time()), run_id),
            )
    except (sqlite3.IntegrityError, aiosqlite.IntegrityError):
        held = await running(db)
        if held is None:
            raise
        raise RunLockedError(held) from None


def alive(run: TrainingRun, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return run.heartbeat is not None and now - run.heartbeat < STALE_SECONDS


async def release_stale(db: Database) -> TrainingRun | None:
    """Release the lock of a run whose heartbeat stopped: it is marked interrupted (and
    can be resumed). The run released, if any."""
    async with db.transaction():
        held = await running(db)
        if held is None or alive(held):
            return None
        await finish(db, held.id, "interrupted", "its process stopped (no heartbeat)")
    log.warning("training run %s had stopped without a word: its lock is released", held.id)
    return held


class Heartbeat(threading.Thread):
    """Writes a run's heartbeat every few seconds from a thread of its own, with its own
    connection, while the run converts a model, builds a dataset or trains. A write that
    fails (the database busy with a large import) is tried again at the next beat; it
    never stops the run."""

    def __init__(self, path: Path, run_id: int, every: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(name=f"twin-heartbeat-{run_id}", daemon=True)
        self.path, self.run_id, self.every = path, run_id, every
        self._stopped = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self.every)
        try:
            while not self._stopped.wait(self.every):
                try:
                    with conn:
                        conn.execute(
                            "UPDATE training_runs SET heartbeat = ? "
                            "WHERE id = ? AND status = 'running'",
                            (int(time.time()), self.run_id),
                        )
                except sqlite3.Error as err:
                    log.warning("heartbeat not written (%s); trying again", err)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self.join()
