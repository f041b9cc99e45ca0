"""`twin demo` end to end on the tiny model: import, train, evaluate, side by side; and
a second run that reuses all of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.cli import main
from twin.commands import demo


def test_demo_runs_end_to_end_then_reuses_everything(
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    # The demo trains with the user's settings: here a few steps of the tiny model.
    monkeypatch.setattr(demo, "EXAMPLES", 2)
    toml = tmp_path / "twin.toml"
    toml.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[model]\ncheckpoint = "{tiny_checkpoint}"\nprecision = "32-true"\n'
        "[train]\nbatch_size = 8\nmax_steps = 3\nlearning_rate = 2e-3\nwarmup_steps = 1\n"
    )

    assert main(["demo", "--config", str(toml), "--no-chat"]) == 0
    first = capsys.readouterr().out
    for step in range(1, 6):
        assert f"[{step}/5]" in first
    assert "3,148 new" in first
    assert "step 3/3" in first and "adapter 1 promoted" in first
    assert "loss per token    base" in first and "sounds like you" in first
    assert first.count("  Kostya       ") == 2  # two held-out replies side by side
    assert "chat --db" in first  # how to talk to the twin, since there is no terminal
    assert (tmp_path / "data" / "demo" / "report.json").is_file()

    assert main(["demo", "--config", str(toml), "--no-chat"]) == 0
    second = capsys.readouterr().out
    assert "0 new" in second and "already done" in second and "training" not in second
    # The same report as the first run printed.
    assert (
        second.split("Held-out replies")[1].split("The demo took")[0]
        == (first.split("Held-out replies")[1].split("The demo took")[0])
    )
