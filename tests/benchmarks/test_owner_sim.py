"""benchmarks/owner_sim.py on the tiny model: one night of the simulated owner, every arm,
through the userbot, the draft workflow and a scheduled run."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_simulated_owner_runs_a_night_on_the_tiny_model(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    work, plot = tmp_path / "work", tmp_path / "chrf.png"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "owner_sim.py"),
            "sample",
            *("--nights", "1", "--drafts", "2", "--minutes", "5"),  # steps end the runs
            *("--set", f"model.checkpoint={tiny_checkpoint}", "--set", "train.max_steps=2"),
            *("--set", "preference.demonstrated=2"),
            *("--models", str(tmp_path / "models"), "--work", str(work), "--plot", str(plot)),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    arms = [arm["arm"] for arm in report["arms"]]
    assert arms == ["supervised", "preference", "reranking", "nightly"]
    for arm in report["arms"]:
        assert [(d["day"], d["drafts"]) for d in arm["days"]] == [(1, 2), (2, 2)]
        assert all(abs(d["sent"] + d["edited"] + d["answered"] - 1) < 1e-6 for d in arm["days"])
        (night,) = arm["nights"]
        # The nightly arm has no supervised phase: its night learns on the active adapter.
        assert night["run"]["steps"] == (0 if arm["arm"] == "nightly" else 2)
        assert night["test"]["tasks"] > 0 and night["test"]["loss"] > 0
    nightly = report["arms"][3]["nights"][0]["run"]
    assert nightly["preference_skipped"] is None and nightly["preference_steps"] > 0
    preference = report["arms"][1]["nights"][0]["run"]
    decided = report["arms"][1]["days"][0]
    # The first day's decisions reached the night's preference phase as feedback.
    assert preference["preference_skipped"] is None and preference["preference_steps"] > 0
    answered_pairs = (preference["preference_sources"] or {}).get("answered", 0)
    assert answered_pairs == round(decided["answered"] * decided["drafts"])
    assert plot.read_bytes().startswith(b"\x89PNG")

    # The replay went through the workflow: its drafts are decided in the arm's database,
    # and nothing of the test conversations reached any arm.
    with sqlite3.connect(work / "preference" / "twin.db") as db:
        statuses = {s for (s,) in db.execute("SELECT status FROM drafts")}
        newest = db.execute("SELECT MAX(date) FROM messages").fetchone()[0]
    with sqlite3.connect(work / "test" / "twin.db") as db:
        total = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert statuses & {"sent", "edited_sent", "expired"}
    test_rows = [
        json.loads(line)
        for line in (work / "test" / "dataset" / "samples.jsonl").read_text().splitlines()
    ]
    test_starts = min(r["conversation"] for r in test_rows if r["split"] == "val")
    assert newest < test_starts and total > 0
