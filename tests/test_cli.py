"""The `twin` command line as a user runs it: exit codes, one-line errors, --json."""

from __future__ import annotations

import json
import os
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


def test_import_human_output_and_second_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "x.db"
    assert main(["import", str(FULL), "--db", str(db)]) == 0
    assert "24 new" in capsys.readouterr().out
    assert main(["import", str(FULL / "result.json"), "--db", str(db)]) == 0
    assert "0 new, 0 updated, 24 already stored" in capsys.readouterr().out


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
