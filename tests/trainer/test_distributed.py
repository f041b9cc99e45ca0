"""Training in several processes (trainer.processes): two CPU ranks under Fabric's DDP
with the gloo backend, started by `twin train` through torchrun, on the tiny model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch

from storage import runs as runs_table
from storage import with_database
from storage.adapters import all_adapters
from tests.conftest import ROOT
from tests.trainer.test_finetune import config_for, persona_db  # noqa: F401 (a fixture)
from tests.twin.test_cli import twin
from trainer.finetune import Progress
from trainer.processes import JOB_FILE, RESULT_FILE, torchrun_command
from trainer.run import RunConfig, RunReport, TrainingError, run_training
from trainer.settings import TrainSettings
from twin.model import registry

# Eight steps of eight samples, a checkpoint every two, the same seed everywhere; no time
# budget (a slow machine must not end a run early).
STEPS = {"max_steps": 8, "eval_interval": 2, "max_minutes": 0}
# Two ranks add their halves of each gradient where one process adds them all: the same
# sums in another order, so the weights differ by float32 rounding, which AdamW's
# division by the gradients' running scale carries along. Measured: 2e-5 of each LoRA
# matrix's norm at most after eight steps; allowed: 1e-3.
ACROSS_PROCESS_COUNTS = 1e-3


def adapter_of(report: RunReport) -> dict[str, torch.Tensor]:
    return registry.load(Path(report.adapter_path))


def config_in(folder: Path, persona_db: Path, tiny: Path, **train: object) -> RunConfig:  # noqa: F811
    folder.mkdir(exist_ok=True)
    return config_for(folder, persona_db, tiny, **{**STEPS, **train})


@pytest.fixture(scope="module")
def two_ranks(
    tiny_checkpoint: Path,
    persona_db: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[RunConfig, RunReport, list[int]]:
    """A run of two ranks from start to end, and the steps its progress reported."""
    config = config_in(tmp_path_factory.mktemp("two"), persona_db, tiny_checkpoint, devices=2)
    steps: list[int] = []
    return config, run_training(config, on_progress=lambda p: steps.append(p.step)), steps


def test_two_processes_learn_what_one_process_learns(
    two_ranks: tuple[RunConfig, RunReport, list[int]],
    tiny_checkpoint: Path,
    persona_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    config, two, steps = two_ranks
    one = run_training(config_in(tmp_path / "one", persona_db, tiny_checkpoint))
    assert steps == list(range(1, 9))  # rank 0's progress, every step, once
    assert two.training["steps"] == one.training["steps"] == 8
    assert two.training["tokens"] == one.training["tokens"]  # both ranks' tokens counted
    ours, theirs = adapter_of(one), adapter_of(two)
    assert ours.keys() == theirs.keys()
    for name, value in ours.items():
        assert (theirs[name] - value).norm() <= ACROSS_PROCESS_COUNTS * value.norm(), name
    val_one = [loss for _, loss in one.training["val_losses"]]
    assert [loss for _, loss in two.training["val_losses"]] == pytest.approx(val_one, rel=1e-4)
    assert two.adapter_loss == pytest.approx(one.adapter_loss, rel=1e-4)
    run_dir = Path(registry.read_meta(Path(two.adapter_path))["dataset"]).parent
    assert (run_dir / JOB_FILE).is_file() and (run_dir / RESULT_FILE).is_file()
    # One adapter registered, by `twin train`, not one per rank.
    assert len(with_database(config.db_path, all_adapters)) == 1


def test_a_killed_rank_fails_the_run_and_resume_ends_where_an_unbroken_run_ends(
    two_ranks: tuple[RunConfig, RunReport, list[int]],
    tiny_checkpoint: Path,
    persona_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, straight, _ = two_ranks
    config = config_in(tmp_path / "killed", persona_db, tiny_checkpoint, devices=2)

    def kill_rank_one(progress: Progress) -> None:
        if progress.step == 3:  # step 2's checkpoint is on disk
            (rank,) = [
                child
                for child in psutil.Process().children(recursive=True)
                if child.environ().get("RANK") == "1"
            ]
            os.kill(rank.pid, signal.SIGKILL)

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    with pytest.raises(TrainingError, match="without finishing"):
        run_training(config, on_progress=kill_rank_one)
    killed = with_database(config.db_path, lambda db: runs_table.latest(db))
    assert killed.status == "failed"
    stray = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in before and child.is_running()
    ]
    assert not stray  # torchrun and rank 0 are gone too

    resumed = run_training(config, resume=True)
    assert resumed.run_id == killed.id and resumed.training["steps"] == 8
    assert resumed.training["train_losses"] == straight.training["train_losses"]
    for name, value in adapter_of(straight).items():
        torch.testing.assert_close(adapter_of(resumed)[name], value, rtol=1e-5, atol=1e-6)


def test_several_machines_start_node_zero_with_its_address() -> None:
    settings = TrainSettings(devices=8, num_nodes=2, main_node="10.0.0.1:29500")
    command = torchrun_command(settings, Path("/shared/runs/7"))
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nnodes=2" in command and "--node-rank=0" in command
    assert "--master-addr=10.0.0.1" in command and "--master-port=29500" in command
    assert command[-4:] == ["--nproc-per-node=8", "-m", "trainer.processes", "/shared/runs/7"]
    single = torchrun_command(TrainSettings(devices=2), Path("r"))
    assert "--standalone" in single and not any("--nnodes" in part for part in single)


def test_num_nodes_without_an_address_is_refused_in_one_line(tmp_path: Path) -> None:
    done = twin(
        "train",
        "--db",
        str(tmp_path / "x.db"),
        env={"TWIN_DATA_DIR": str(tmp_path), "TWIN_TRAIN__NUM_NODES": "2"},
    )
    assert done.returncode == 1 and "main_node" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_machines_train_one_run(
    tiny_checkpoint: Path,
    persona_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two "machines" on this one, a rank each, sharing the data folder: the main node's
    `twin train` and the other's `twin train --node-rank 1`."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "twin.db").write_bytes(persona_db.read_bytes())
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "TWIN_DATA_DIR": str(data),
        "TWIN_MODEL__CHECKPOINT": str(tiny_checkpoint),
        "TWIN_MODEL__PRECISION": "32-true",
        "TWIN_DATASET__VAL_FRACTION": "0.1",
        "TWIN_TRAIN__BATCH_SIZE": "8",
        "TWIN_TRAIN__EPOCHS": "1",
        "TWIN_TRAIN__MAX_STEPS": "4",
        "TWIN_TRAIN__MAX_MINUTES": "0",
        "TWIN_TRAIN__NUM_NODES": "2",
        "TWIN_TRAIN__MAIN_NODE": f"127.0.0.1:{port}",
        # Both "machines" share this one's cores: a thread each, as torchrun gives
        # every rank when it starts several on one machine.
        "OMP_NUM_THREADS": "1",
    }
    train = [sys.executable, "-m", "twin", "train"]
    main_node = subprocess.Popen([*train, "--json"], env=env, stdout=subprocess.PIPE, text=True)
    other = subprocess.run([*train, "--node-rank", "1"], env=env, capture_output=True, text=True)
    out, _ = main_node.communicate(timeout=600)
    assert other.returncode == 0, other.stderr[-2000:]
    assert main_node.returncode == 0
    report = json.loads(out)
    assert report["training"]["steps"] == 4 and report["promoted"]
    job = json.loads((data / "runs" / "1" / JOB_FILE).read_text())
    assert job["train"]["num_nodes"] == 2
