"""Acting as the owner safely: the storage and filter guarantees the bot relies on."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import pytest

from bot.auto_send import refusal
from bot.settings import UserbotSettings
from exporter.desktop_export import ExportFormatError
from storage import Database, open_database
from storage import settings as settings_table
from tests.exporter.test_desktop_import import run_import
from tests.exports import OWNER, chat, dialogue, message, write_json

# -- one serialized write path -----------------------------------------------------------


async def test_overlapping_transactions_of_two_tasks_both_land(db: Database) -> None:
    async def writer(key: str) -> None:
        async with db.transaction():
            await settings_table.put(db, key, 1)
            await asyncio.sleep(0.05)  # the other task's transaction begins meanwhile
            await settings_table.put(db, key, 2)

    await asyncio.gather(writer("a"), writer("b"))
    assert [await settings_table.get(db, k) for k in "ab"] == [2, 2]


async def test_a_write_is_not_rolled_back_with_another_tasks_transaction(db: Database) -> None:
    started = asyncio.Event()

    async def failing() -> None:
        async with db.transaction():
            await settings_table.put(db, "doomed", 1)
            started.set()
            await asyncio.sleep(0.1)
            raise RuntimeError("this transaction fails")

    async def knob() -> None:
        await started.wait()
        await settings_table.set_knob(db, "temperature", 0.5)  # e.g. /style, meanwhile

    results = await asyncio.gather(failing(), knob(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert await settings_table.get(db, "doomed") is None
    assert await settings_table.get(db, settings_table.STYLE) == {"temperature": 0.5}


async def test_a_write_outside_a_transaction_is_refused(db: Database) -> None:
    with pytest.raises(RuntimeError, match="outside a transaction"):
        await db.execute("INSERT INTO settings (key, value) VALUES ('k', '1')")


# -- a failed import changes nothing ------------------------------------------------------


async def test_a_failed_newer_export_that_edits_messages_changes_nothing(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = [message(i, 42 if i % 2 else OWNER, f"m{i}", at=i * 60) for i in range(1, 30_001)]
    await run_import(db_path, write_json(tmp_path / "a.json", chat(42, old)), owner_id=OWNER)
    before = db_path.read_bytes()
    newer = [dict(m, text=f"{m['text']} edited", edited_unixtime="1900000000") for m in old]
    newer[-1]["id"] = "broken"  # fails after whole batches of edits went to SQLite
    path = write_json(tmp_path / "b.json", chat(42, newer))
    from storage.staging import Staging

    real_add = Staging.add

    async def slow_add(self: Staging, rows: list) -> None:
        await asyncio.sleep(0.2)  # the batch write is still in flight when parsing fails
        await real_add(self, rows)

    monkeypatch.setattr(Staging, "add", slow_add)
    loop_errors: list[dict] = []
    gc.collect()  # what earlier tests left to collect complains now, not below
    await asyncio.sleep(0)
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
    with pytest.raises(ExportFormatError, match="'id' must be an integer"):
        await run_import(db_path, path, owner_id=OWNER)
    gc.collect()  # a task whose exception nobody retrieved complains when collected
    await asyncio.sleep(0)
    assert loop_errors == []
    assert db_path.read_bytes() == before


# -- auto mode sends only what nobody needs to read --------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "позвони мне [PHONE]",
        "пиши на [EMAIL] ок",
        "пароль [SECRET]",
        "[poll: куда идём?]",
        "[game]",
        "[photo] смотри",
        "ну да да да да",
        "ха ха ха ха ха ха ха ха",
        "окккккккккккк",
        "норм\nнорм",
        "вот ссылка https://example.org",
        "пиши @someone",
        "мой номер 8 921 555 13 07",
        "ok\nR: and you?",
        "### Your response:",
        "x" * 301,
        "   ",
    ],
)
def test_auto_mode_refuses_what_a_person_should_read(text: str) -> None:
    assert refusal(text) is not None


@pytest.mark.parametrize("text", ["ну норм)", "давай в семь у метро", "ok, see you at 7 🙃"])
def test_auto_mode_lets_plain_short_replies_through(text: str) -> None:
    assert refusal(text) is None


def test_auto_is_never_the_default_for_unknown_contacts() -> None:
    with pytest.raises(ValueError, match="default_mode"):
        UserbotSettings(default_mode="auto")  # type: ignore[arg-type]


# -- the training lock -----------------------------------------------------------------


async def test_the_bot_clears_a_lock_whose_heartbeat_stopped(db: Database) -> None:
    import os
    import socket
    import time

    from bot.training import TrainingLauncher
    from storage import runs as runs_table

    held = await runs_table.start(db, "cli", os.getpid(), socket.gethostname())  # a live PID
    launcher = TrainingLauncher(db, ["true"])

    async def nothing(*_: object) -> None:
        return None

    started, running = await launcher.start("bot", nothing, nothing)
    assert (started, running.id if running else None) == (False, held)  # fresh: it holds
    async with db.transaction():
        await db.execute(
            "UPDATE training_runs SET heartbeat = ? WHERE id = ?",
            (int(time.time() - runs_table.STALE_SECONDS - 1), held),
        )
    started, _ = await launcher.start("bot", nothing, nothing)
    await launcher.wait()
    assert started and (await runs_table.get(db, held)).status == "interrupted"


def test_the_heartbeat_beats_on_its_own_and_survives_a_locked_database(tmp_path: Path) -> None:
    import sqlite3
    import time

    from storage import BlockingDatabase
    from storage import runs as runs_table

    path = tmp_path / "twin.db"
    with BlockingDatabase(path, create=True) as store:
        run_id = store.run(lambda db: runs_table.start(db, "cli", 1, "h"))
        store.run(lambda db: stale(db, run_id))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # a long import holds the write lock
    beat = runs_table.Heartbeat(path, run_id, every=0.2)
    beat.start()
    time.sleep(0.7)  # beats fail meanwhile, and the thread goes on
    blocker.execute("COMMIT")
    time.sleep(0.7)
    beat.stop()
    with BlockingDatabase(path) as store:
        run = store.run(lambda db: runs_table.get(db, run_id))
    assert runs_table.alive(run)


async def stale(db: Database, run_id: int) -> None:
    import time

    from storage import runs as runs_table

    async with db.transaction():
        await db.execute(
            "UPDATE training_runs SET heartbeat = ? WHERE id = ?",
            (int(time.time() - runs_table.STALE_SECONDS - 1), run_id),
        )


# -- the owner, and who else sees what ---------------------------------------------------


async def test_an_owner_id_that_disagrees_with_the_database_is_refused(db: Database) -> None:
    from twin.commands.run import _owner
    from twin.settings import SettingsError

    await settings_table.put(db, settings_table.OWNER_ID, 111)
    assert await _owner(db, None) == 111 and await _owner(db, 111) == 111
    with pytest.raises(SettingsError, match=r"telegram\.owner_id is 112, but this database"):
        await _owner(db, 112)


async def test_a_userbot_logged_in_as_someone_else_is_refused(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter import userbot
    from exporter.userbot import UserbotError
    from tests.fake_telethon import ScriptedTelegram, user
    from twin.commands import run as run_command
    from twin.memory.keeper import MemoryKeeper
    from twin.settings import Settings

    someone = ScriptedTelegram(user(42, "Someone", is_self=True), [])
    monkeypatch.setattr(userbot, "make_client", lambda config: someone)
    settings = Settings(
        data_dir=tmp_path,
        telegram={"api_id": 1, "api_hash": "h", "session": "s"},  # type: ignore[arg-type]
    )
    memory = MemoryKeeper(db, settings.memory, settings.dataset, settings.prompt.burst_separator)
    start = run_command.userbot_starter(settings, db, memory)

    class Workflow:
        owner_id = 111

    with pytest.raises(UserbotError, match="logged in as user 42, but the owner is user 111"):
        await start(Workflow())  # type: ignore[arg-type]


def test_training_inherits_no_secrets() -> None:
    from bot.training import without_secrets

    env = {
        "PATH": "/bin",
        "TWIN_DATA_DIR": "data",
        "TWIN_TELEGRAM__BOT_TOKEN": "1:x",
        "TWIN_TELEGRAM__API_HASH": "h",
        "TWIN_TELEGRAM__SESSION": "s",
        "TWIN_SERVE__TOKEN": "t",
    }
    assert without_secrets(env) == {"PATH": "/bin", "TWIN_DATA_DIR": "data"}


def test_the_bot_config_never_shows_its_token() -> None:
    from bot.config import BotConfig

    config = BotConfig(token="123456:SECRET-token", api_url="u", owner_id=1, train_command=[])
    assert "SECRET" not in repr(config) and "SECRET" not in str(config)


def test_data_is_private_whatever_the_umask(tmp_path: Path) -> None:
    import os
    import stat
    import subprocess
    import sys

    from tests.conftest import FIXTURES

    data = tmp_path / "data"
    command = [sys.executable, "-m", "twin", "import", str(FIXTURES / "full_account")]
    env = {**os.environ, "TWIN_DATA_DIR": str(data)}
    env.pop("TWIN_CONFIG", None)
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, umask=0o022
    )
    assert done.returncode == 0, done.stderr
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(data) == 0o700 and mode(data / "twin.db") == 0o600
    os.chmod(data, 0o755)  # loosened by hand: tightened, with a warning
    done = subprocess.run(
        [*command, "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, umask=0o022
    )
    assert done.returncode == 0 and mode(data) == 0o700
    assert "was readable by others" in done.stderr
    # Files twin writes with plain open() and mkdir() (the dataset, its folder) are
    # private by the umask the CLI sets, not by a chmod of their own.
    dataset = [sys.executable, "-m", "twin", "dataset"]
    done = subprocess.run(
        dataset, env=env, cwd=tmp_path, capture_output=True, text=True, umask=0o022
    )
    assert done.returncode == 0, done.stderr
    written = list(data.rglob("*"))
    assert data / "dataset" / "samples.jsonl" in written
    assert all(mode(p) & 0o077 == 0 for p in written)


def test_a_folder_of_the_users_is_left_as_it_is_and_a_dry_run_writes_nothing(
    tmp_path: Path,
) -> None:
    """`--db ~/x.db` puts the database in a folder of the user's: twin warns that others
    can read it and never changes it; a dry run creates nothing at all."""
    import os
    import stat
    import subprocess
    import sys

    from tests.conftest import FIXTURES

    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o755)
    env = {**os.environ, "TWIN_DATA_DIR": str(tmp_path / "data")}
    env.pop("TWIN_CONFIG", None)
    base = [sys.executable, "-m", "twin", "import", str(FIXTURES / "full_account")]

    def twin(*more: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*base, *more], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    for db in (home / "x.db", home / "new" / "x.db"):
        done = twin("--dry-run", "--db", str(db))
        assert done.returncode == 0, done.stderr
        assert "new" in done.stdout and list(home.iterdir()) == []
        assert stat.S_IMODE(home.stat().st_mode) == 0o755
    done = twin("--db", str(home / "x.db"))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o755  # the user's folder, untouched
    assert "can be read by others" in done.stderr
    assert stat.S_IMODE((home / "x.db").stat().st_mode) == 0o600


def test_resume_state_cannot_run_code(tmp_path: Path) -> None:
    import pickle

    import torch

    from trainer.finetune import _restore

    class Payload:
        def __reduce__(self) -> tuple:
            return (print, ("this ran",))

    path = tmp_path / "state.pt"
    torch.save({"total_steps": 1, "evil": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        _restore(path, torch.nn.Linear(1, 1), None, None, 1)  # type: ignore[arg-type]


# -- what reaches training -----------------------------------------------------------------


async def test_a_lone_surrogate_is_repaired_and_counted(db_path: Path, tmp_path: Path) -> None:
    export = chat(42, [message(1, 42, "broken \ud83d emoji", at=0), message(2, OWNER, "ok", at=60)])
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=True), encoding="utf-8")
    report = await run_import(db_path, path, owner_id=OWNER)
    assert (report.new, report.repaired) == (2, 1)
    async with open_database(db_path) as db:
        assert await db.fetchone("SELECT text FROM messages WHERE message_id = 1") == (
            "broken \ufffd emoji",
        )


async def test_excluded_chats_and_the_twins_own_words_stay_out_of_training(
    db_path: Path, tmp_path: Path
) -> None:
    from storage import drafts as drafts_table
    from storage import messages as messages_table
    from twin.dataset.build import build_dataset, read_samples
    from twin.dataset.feedback import preferences_path
    from twin.dataset.settings import DatasetSettings
    from twin.prompt.samples import SampleMaker
    from twin.prompt.settings import PromptSettings

    lines = [(0, "them: как дела"), (60, "me: норм"), (120, "them: а вечером?"), (180, "me: AUTO")]
    for peer in (42, 43):
        await run_import(
            db_path,
            write_json(tmp_path / f"{peer}.json", chat(peer, dialogue(peer, lines))),
            owner_id=OWNER,
        )
    async with open_database(db_path) as db:
        async with db.transaction():
            await messages_table.mark_by_twin(db, 42, 4)  # sent by the twin in auto mode
        for peer in (42, 43):  # an edited draft in each chat: a preference pair each
            draft = await drafts_table.create(db, peer, 3, "а вечером?", "prompt", "draft")
            await drafts_table.claim_for_sending(db, draft, "final", "edit")
            await drafts_table.mark_sent(db, draft, 99)
    out = tmp_path / "samples.jsonl"
    settings = DatasetSettings(val_fraction=0, exclude_chats=[43])
    build_dataset(db_path, out, settings, SampleMaker(PromptSettings()))
    outputs = [s["output"] for s in read_samples(out)]
    assert outputs == ["норм"]  # not chat 43, not the twin's own "AUTO"
    pairs = [json.loads(line) for line in preferences_path(out).read_text().splitlines()]
    assert [p["chat_id"] for p in pairs] == [42]


def test_training_without_a_terminal_logs_the_first_step_validations_and_the_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trainer.finetune import Progress
    from twin.commands.common import ProgressLines

    lines = ProgressLines()
    for step in range(1, 13):
        lines(
            Progress(
                step, 12, 2.0, 300.0, elapsed=step * 10.0, val_loss=1.5 if step == 10 else None
            )
        )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "twin: step 1/12, loss 2.000, 300 tokens/s, about 1.8 min left",
        "twin: step 10/12, loss 2.000, validation 1.500, 300 tokens/s, about 0.3 min left",
        "twin: step 12/12, loss 2.000, 300 tokens/s, about 0.0 min left",
    ]


def test_other_writers_keep_working_during_a_large_import(tmp_path: Path) -> None:
    """The bot, the userbot and a training heartbeat write while an import runs: with
    a busy timeout of one second (the real one is ten) none of their writes may fail."""
    import sqlite3
    import threading
    import time

    from storage import BlockingDatabase
    from storage import runs as runs_table
    from tests.synthetic_export import write_export

    path = tmp_path / "twin.db"
    export = write_export(tmp_path / "big.json", 120_000, chats=4)
    with BlockingDatabase(path, create=True) as store:
        run_id = store.run(lambda db: runs_table.start(db, "cli", 1, "h"))
    failures: list[str] = []
    writes = 0
    stop = threading.Event()

    def heartbeat() -> None:
        nonlocal writes
        conn = sqlite3.connect(path, timeout=1.0)
        while not stop.is_set():
            try:
                with conn:
                    conn.execute(
                        "UPDATE training_runs SET heartbeat = ? WHERE id = ?",
                        (int(time.time()), run_id),
                    )
                writes += 1
            except sqlite3.OperationalError as err:
                failures.append(str(err))
            time.sleep(0.01)
        conn.close()

    beating = threading.Thread(target=heartbeat)
    beating.start()
    try:
        report = asyncio.run(run_import(path, export))
    finally:
        stop.set()
        beating.join()
    assert report.new == 120_000 - sum(report.skipped.values())
    assert failures == [] and writes > 50


async def test_a_seed_phrase_without_digits_is_scrubbed_from_samples(
    db_path: Path, tmp_path: Path
) -> None:
    """Only texts with a digit or a sign used to reach the scrubber; a seed phrase has
    neither."""
    from twin.dataset.build import build_dataset, read_samples
    from twin.dataset.settings import DatasetSettings
    from twin.prompt.samples import SampleMaker
    from twin.prompt.settings import PromptSettings

    seed = "blame mosquito hotel dance refuse evil cage swim air output zero equal"
    lines = [(0, "them: скинь сид от кошелька"), (60, f"me: {seed}")]
    export = write_json(tmp_path / "c.json", chat(42, dialogue(42, lines)))
    await run_import(db_path, export, owner_id=OWNER)
    out = tmp_path / "samples.jsonl"
    build_dataset(db_path, out, DatasetSettings(val_fraction=0), SampleMaker(PromptSettings()))
    assert [s["output"] for s in read_samples(out)] == ["[SEED]"]


def test_the_userbot_session_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """The session is full access to the owner's account: 0600 when Telethon creates it
    and when an older one was left readable."""
    import os
    import stat

    from exporter.userbot import UserbotConfig, make_client

    fresh = tmp_path / "fresh" / "userbot.session"
    loose = tmp_path / "loose.session"
    loose.write_bytes(b"")
    loose.chmod(0o644)
    previous = os.umask(0o022)
    try:
        for path in (fresh, loose):
            client = make_client(UserbotConfig(api_id=1, api_hash="x", session_file=path))
            client.session.close()
    finally:
        os.umask(previous)
    assert fresh.stat().st_size > 0  # Telethon wrote its tables into the file made for it
    assert {stat.S_IMODE(p.stat().st_mode) for p in (fresh, loose)} == {0o600}
