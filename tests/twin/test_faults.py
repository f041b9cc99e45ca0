"""SIGKILL at random points, then the invariants after a restart.

Each test kills a real subprocess at a random moment: an import (the database is as it
was, or has the whole import), a training run (no half adapter registered, the lock is
released, --resume goes on), a three-part send as the owner (each part sent exactly
once, the draft ends sent). CI runs two kills of each (four of the send); the long run sets
FAULT_RUNS=20.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import chats as chats_table
from storage import drafts as drafts_table
from storage import open_database
from storage import runs as runs_table
from storage import settings as settings_table
from tests.conftest import ROOT
from tests.exports import import_into
from tests.synthetic_export import write_export

RUNS = int(os.environ.get("FAULT_RUNS", "2"))
PYTHON = sys.executable


def killed_after(command: list[str], seconds: float, ready: str | None = None) -> None:
    """Start `command`, wait for the line `ready` (if any) and `seconds` more, SIGKILL."""
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    if ready is not None:
        assert process.stdout is not None
        while ready not in process.stdout.readline():
            pass
    time.sleep(seconds)
    process.kill()
    process.wait()


async def query(db_path: Path, sql: str) -> list[tuple]:
    async with open_database(db_path) as db:
        return await db.fetchall(sql)


# -- import ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export(tmp_path_factory.mktemp("export") / "result.json", 150_000, chats=6)


@pytest.mark.parametrize("attempt", range(RUNS))
def test_a_killed_import_leaves_the_database_as_it_was_or_whole(
    tmp_path: Path, big_export: Path, attempt: int
) -> None:
    db_path = tmp_path / "twin.db"
    seed = write_export(tmp_path / "seed.json", 500, chats=2, seed=99, start=1_500_000_000)
    asyncio.run(import_into(db_path, seed))
    before = asyncio.run(query(db_path, "SELECT COUNT(*) FROM messages"))[0][0]
    command = [PYTHON, "-m", "twin", "import", str(big_export), "--db", str(db_path)]
    killed_after(command, random.Random(attempt).uniform(0.5, 6.0))
    count, imports = asyncio.run(
        query(db_path, "SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM imports)")
    )[0]
    whole = subprocess.run([*command, "--json"], cwd=ROOT, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    total = asyncio.run(query(db_path, "SELECT COUNT(*) FROM messages"))[0][0]
    assert total > before
    assert (count, imports) in ((before, 1), (total, 2)), "half an import is in the database"
    assert not list(tmp_path.glob(".import-*"))  # the staging file of the killed one is gone


# -- training ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def persona(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from twin.commands.demo import sample_export

    path = tmp_path_factory.mktemp("persona") / "twin.db"
    asyncio.run(import_into(path, sample_export()))
    return path


@pytest.mark.parametrize("attempt", range(RUNS))
def test_a_killed_training_run_registers_no_half_adapter_and_resumes(
    tmp_path: Path, persona: Path, tiny_checkpoint: Path, attempt: int
) -> None:
    db_path = tmp_path / "twin.db"
    db_path.write_bytes(persona.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[model]\ncheckpoint = "{tiny_checkpoint}"\nprecision = "32-true"\n'
        "[train]\nbatch_size = 8\nepochs = 1\nmax_steps = 8\nlearning_rate = 0.002\n"
        "warmup_steps = 1\neval_interval = 1\n"
        "max_minutes = 0\n"  # no time budget: a slow machine must not end the run early
    )
    train = [PYTHON, "-m", "twin", "train", "--json", "--config", str(config), "--db", str(db_path)]
    killed_after(train, random.Random(attempt).uniform(1.0, 12.0))

    async def check_and_age() -> bool:
        async with open_database(db_path) as db:
            for adapter in await db.fetchall("SELECT path FROM adapters"):
                assert (Path(adapter[0]) / "adapter.pth").is_file(), "a half adapter"
            held = await runs_table.running(db)
            if held is not None:  # the process is gone: a minute later its lock is stale
                async with db.transaction():
                    await db.execute(
                        "UPDATE training_runs SET heartbeat = ? WHERE id = ?",
                        (int(time.time() - runs_table.STALE_SECONDS - 1), held.id),
                    )
            last = await runs_table.latest(db)
            return last is not None and last.status == "running"

    was_running = asyncio.run(check_and_age())
    resumed = subprocess.run([*train, "--resume"], cwd=ROOT, capture_output=True, text=True)
    if resumed.returncode != 0:  # killed before anything could be resumed: start again
        assert "nothing to resume" in resumed.stderr or not was_running, resumed.stderr
        resumed = subprocess.run(train, cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout.splitlines()[-1])
    assert report["training"]["steps"] == 8, report["training"]  # why it stopped, if not
    assert asyncio.run(
        query(db_path, "SELECT COUNT(*) FROM training_runs WHERE status = 'running'")
    ) == [(0,)]


# -- sending as the owner ----------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(RUNS * 2))
def test_a_killed_send_sends_each_part_exactly_once(tmp_path: Path, attempt: int) -> None:
    from tests.fake_telethon import OWNER
    from tests.fault_send import PEER, TEXT

    db_path, state = tmp_path / "twin.db", tmp_path / "server.json"

    async def pending_draft() -> int:
        async with open_database(db_path) as db:
            await settings_table.put(db, settings_table.OWNER_ID, OWNER)
            await chats_table.upsert(db, chats_table.Chat(PEER, "personal_chat", "Anna"))
            return await drafts_table.create(db, PEER, 0, "расскажи", "prompt", "draft")

    draft_id = asyncio.run(pending_draft())
    command = [PYTHON, "-m", "tests.fault_send"]
    args = [str(db_path), str(state), str(draft_id)]
    # Three parts take about 0.3 s: the kill lands before, between or after them.
    killed_after([*command, "send", *args], random.Random(attempt).uniform(0.0, 0.4), "sending")
    subprocess.run([*command, "reconcile", *args], cwd=ROOT, check=True, timeout=120)
    sent = [m["text"] for m in json.loads(state.read_text())["messages"]] if state.exists() else []
    draft = asyncio.run(query(db_path, f"SELECT status FROM drafts WHERE id = {draft_id}"))
    if draft == [("pending",)]:  # killed before the Send was recorded: nothing went out
        assert sent == []
    else:
        assert sent == TEXT.split("\n") and draft == [("edited_sent",)]
