"""The `twin` command line as a user runs it: exit codes, one-line errors, --json."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT
from twin.cli import main

FULL = FIXTURES / "full_account"


def twin(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twin", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=120,
    )


def test_import_json_output(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    done = twin("import", str(FULL), "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"chats", "new", "duplicates", "skipped", "owner_id"} <= report.keys()
    assert (report["chats"], report["new"], report["owner_id"]) == (7, 24, 5550001)
    # The owner's replies are remembered as they arrive: the import indexes them.
    with sqlite3.connect(db) as conn:
        (indexed,) = conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()
    assert report["memory"]["exchanges"] == indexed > 0
    off = twin(
        "import",
        str(FULL),
        "--db",
        str(tmp_path / "off.db"),
        "--json",
        env={"TWIN_MEMORY__ENABLED": "false"},
    )
    assert json.loads(off.stdout)["memory"] is None


def test_import_human_output_and_second_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "x.db"
    assert main(["import", str(FULL), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "24 new" in out and "exchanges of" in out
    assert out.rstrip().splitlines()[-1].startswith("Next: twin train")  # the step after
    assert main(["import", str(FULL / "result.json"), "--db", str(db)]) == 0
    assert "0 new, 0 updated, 24 already stored" in capsys.readouterr().out
    assert main(["import", str(FULL), "--db", str(tmp_path / "dry.db"), "--dry-run"]) == 0
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith(f"Next: twin import {FULL}")  # a dry run says how to store it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "missing.json"], "missing.json: no such file"),
        (["import", "{broken}"], "{broken}: not valid JSON: expected a property name"),
        (["import", str(FIXTURES / "legacy_2020"), "--me", "1"], "neither the chat's peer nor you"),
    ],
)
def test_errors_are_one_line_with_no_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "{broken}").write_text("{not json")
    done = twin(*args, "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twin: error: ") and message in lines[0], (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_config_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "twin.toml"
    config.write_text(f'data_dir = "{tmp_path / "from_config"}"\n')
    done = twin("import", str(FULL), "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "from_config" / "twin.db").exists()
    # The environment overrides the file, nested keys with a double underscore.
    other = tmp_path / "from_env.db"
    done = twin(
        "import",
        str(FULL),
        "--config",
        str(config),
        "--json",
        env={"TWIN_STORAGE__PATH": str(other)},
    )
    assert done.returncode == 0, done.stderr
    assert other.exists()


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "twin.toml"
    config.write_text('[telegram]\nowner_id = "me"\n')
    done = twin("import", str(FULL), "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"twin: error: {config}: telegram.owner_id: Input should be a valid integer, "
        "unable to parse string as an integer (got 'me')"
    )
    config.write_text("[telegram]\nowner = 1\n")
    assert (
        "telegram.owner: unknown setting"
        in twin("import", str(FULL), "--config", str(config)).stderr
    )
    assert "config file not found" in twin("import", str(FULL), "--config", "nope.toml").stderr


def tiny_model_env(tiny_checkpoint: Path) -> dict[str, str]:
    return {
        "TWIN_MODEL__CHECKPOINT": str(tiny_checkpoint),
        "TWIN_MODEL__PRECISION": "32-true",
        "TWIN_GENERATE__MAX_NEW_TOKENS": "12",
    }


def test_twin_reply_answers_with_the_stored_chat_as_context(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    db = tmp_path / "x.db"
    assert main(["import", str(FULL), "--db", str(db)]) == 0
    chat = (
        sqlite3.connect(db)
        .execute("SELECT chat_id FROM messages GROUP BY chat_id ORDER BY COUNT(*) DESC LIMIT 1")
        .fetchone()[0]
    )
    env = tiny_model_env(tiny_checkpoint)

    def reply(*extra: str) -> dict:
        done = twin("reply", "привет", "--db", str(db), "--seed", "7", "--json", *extra, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    alone, in_chat = reply(), reply("--chat", str(chat))
    assert alone["seed"] == 7 and alone["adapter"] is None and alone["messages"]
    assert in_chat["messages"] != alone["messages"]  # the chat's history is in the prompt
    unknown = twin("reply", "привет", "--db", str(db), "--chat", "424242", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == f"twin: error: no chat 424242 is stored in {db}"


def test_twin_chat_keeps_its_history_and_the_style_knobs(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    db = tmp_path / "x.db"
    session = "привет\n/style temperature 0.5\n/style\nкак дела?\n/style length loud\n/quit\n"
    done = subprocess.run(
        [sys.executable, "-m", "twin", "chat", "--db", str(db)],
        input=session,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **tiny_model_env(tiny_checkpoint)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("Talking to the base model.")
    assert out.count("twin> ") >= 2  # both messages answered, the second with history
    assert "temperature = 0.5" in out and "temperature=0.5, top_k=40" in out
    assert "length: Input should be 'short', 'normal' or 'long'" in out
    stored = sqlite3.connect(db).execute("SELECT value FROM settings WHERE key = 'style'")
    assert json.loads(stored.fetchone()[0]) == {"temperature": 0.5}


def test_twin_style_describes_the_owner_and_sets_the_knobs(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    assert twin("import", str(FULL), "--db", str(db)).returncode == 0
    shown = twin("style", "--db", str(db), "--json")
    assert shown.returncode == 0, shown.stderr
    described = json.loads(shown.stdout)
    assert (
        described["profile"]["replies"] == 4 and "yesss" in described["profile"]["frequent_words"]
    )
    assert described["knobs"]["temperature"] == 0.8
    assert twin("style", "temperature", "0.4", "--db", str(db)).returncode == 0
    refused = twin("style", "length", "loud", "--db", str(db))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "length: Input should be 'short', 'normal' or 'long'" in refused.stderr
    knobs = json.loads(twin("style", "--db", str(db), "--json").stdout)["knobs"]
    assert (knobs["temperature"], knobs["length"]) == (0.4, "normal")
    assert twin("style", "reset", "--db", str(db)).returncode == 0
    assert (
        json.loads(twin("style", "--db", str(db), "--json").stdout)["knobs"]["temperature"] == 0.8
    )


# Libraries that take seconds to load: a command that does not use them must not wait.
HEAVY = ("torch", "lightning", "litgpt", "sklearn", "transformers", "aiogram", "telethon")
LOADED = "import sys; print('loaded:', *(m for m in {heavy} if m in sys.modules))"


def _loaded_after(code: str, tmp_path: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code + "\n" + LOADED.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TWIN_DATA_DIR": str(tmp_path / "data")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("loaded:"), done.stdout
    return set(last.removeprefix("loaded:").split())


def test_help_of_every_command_loads_no_heavy_library(tmp_path: Path) -> None:
    """`twin X --help` builds X's parser (its module's register) and nothing else: the
    model libraries load when a command runs that uses them (7-17 s it was)."""
    from twin.cli import COMMANDS

    code = (
        "from twin.cli import build_parser\n"
        f"for name in {sorted(COMMANDS)}:\n"
        "    build_parser([name])\n"
    )
    assert _loaded_after(code, tmp_path) == set()


def test_an_import_loads_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "from twin.cli import main\n"
        f"assert main(['import', {str(FULL)!r}, '--db', 'x.db', '--json']) == 0\n"
    )
    assert _loaded_after(code, tmp_path) == set()
    assert (tmp_path / "x.db").is_file()  # it imported


def test_progress_bars_show_in_a_terminal_that_reports_no_size(tmp_path: Path) -> None:
    """A pseudo-terminal nobody sized reports 0 x 0, and tqdm then printed no bar at all
    (a training run in `script` or an IDE showed no step bar)."""
    import pty

    leader, follower = pty.openpty()  # a fresh pty: 0 rows, 0 columns
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_DATA_DIR": str(tmp_path / "data")}
    env = {k: v for k, v in env.items() if not k.startswith("TQDM_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "twin", "import", str(FULL), "--db", str(tmp_path / "x.db")],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=tmp_path,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process ended and closed its side
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0, shown.decode(errors="replace")
    assert b"\rimport:   0%|" in shown  # the bar, drawn


def readme_commands() -> list[list[str]]:
    """Every `twin ...` command line the README shows in code, as the words that name
    the command (and its action): `twin adapters activate ID` -> [adapters, activate]."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.findall(r"```.*?```|`[^`\n]+`", readme, flags=re.DOTALL)
    # A line of code that runs twin: maybe a prompt, variables, a path; then the command.
    command = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*(?:\S*/)?twin((?: [a-z][a-z-]*){1,2})")
    shown = set()
    for snippet in code:
        for line in snippet.strip("`").splitlines():
            line = re.sub(r"#.*", "", line).strip()  # a comment talks about twin
            if match := command.match(line):
                shown.add(tuple(match.group(1).split()))
    return [list(words) for words in sorted(shown)]


def test_every_command_the_readme_shows_exists() -> None:
    """A renamed or removed command breaks the build, not a reader's first hour (the
    README once said `twin bot`, which never existed)."""
    from twin.cli import build_parser

    shown = readme_commands()
    assert ["import"] in [words[:1] for words in shown] and len(shown) >= 15
    for words in shown:
        argv = list(words)
        parser = build_parser(argv)
        for end in (len(argv), 1):  # with its action if it has one, else alone
            try:
                parser.parse_args([*argv[:end], "--help"])
            except SystemExit as done:
                if done.code == 0:
                    break
        else:
            pytest.fail(f"the README shows `twin {' '.join(words)}`, which is no command")
