"""Training in several processes: one per GPU (or per CPU worker), on one machine or many.

`twin train` keeps what only one process may do: the lock and the heartbeat, the
dataset, the evaluation, the adapter and the database. When `train.devices *
train.num_nodes` is more than one, it writes the training job into the run's folder and
starts torchrun, which starts the ranks on this machine; every other machine of a
multi-node run starts its own with the same job (README: several machines). Each rank
runs `python -m trainer.processes RUN_DIR`: it builds the model and runs the one
training loop (trainer.finetune) under Fabric, which joins the ranks. Rank 0 alone
writes: the resumable checkpoints, its progress as lines on its standard output (for
`twin train` to show and record), and the result.

A rank that dies takes the others with it (torchrun stops them) and the run fails with
one line; `twin train --resume` continues from rank 0's last checkpoint. If `twin train`
itself is killed, torchrun is told to stop its ranks (a parent-death signal), so a
resumed run never meets a stray one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from litgpt import Tokenizer
from pydantic import BaseModel, ConfigDict

from trainer.batches import Encoded, encode
from trainer.budget import RunPlan, fixed_order
from trainer.errors import TrainingError
from trainer.finetune import Progress, TrainResult, train
from trainer.settings import TrainSettings
from twin.dataset.build import read_samples
from twin.model.lora import TwinGPT, build_model
from twin.model.settings import LoRASettings
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt

JOB_FILE = "job.json"
RESULT_FILE = "result.pt"
LOG_FILE = "ranks.log"  # what the ranks and torchrun print besides progress
_PROGRESS = "twin-progress "  # a progress line on rank 0's standard output


class TrainingJob(BaseModel):
    """Everything a rank needs to train, written once by `twin train` as JSON."""

    model_config = ConfigDict(extra="forbid")

    checkpoint_dir: Path
    samples: Path  # the run's dataset, memories included
    lora: LoRASettings
    train: TrainSettings  # with the recipe's choices filled in (trainer.recipe.resolve)
    prompt: PromptSettings
    device: str
    precision: str
    quantize: str | None = None  # model.quantize: the frozen base in 4 or 8 bits
    resume: bool = False
    plan: RunPlan | None = None  # the time budget's plan (trainer.budget); None: no budget

    @property
    def world_size(self) -> int:
        return self.train.devices * self.train.num_nodes


def fabric_for(job: TrainingJob, one_process: bool = False) -> L.Fabric:
    """Fabric for a rank of `job`; with `one_process`, for `twin train` itself (which
    trains a job of one rank, and evaluates every job's result)."""
    several = job.world_size > 1 and not one_process
    return L.Fabric(
        accelerator=job.device,
        devices=job.train.devices if several else 1,
        num_nodes=job.train.num_nodes if several else 1,
        strategy=job.train.strategy if several else "auto",
        precision=job.precision,  # type: ignore[arg-type]
    )


def encoded_samples(job: TrainingJob, tokenizer: Tokenizer) -> tuple[list[Encoded], list[Encoded]]:
    """The job's training samples (the other people's turns among them) and validation
    samples, as token ids."""
    prompt, length = Prompt(job.prompt), job.train.max_seq_length
    rows = read_samples(job.samples)
    training = [row for row in rows if row["split"] in ("train", "other")]
    validation = [row for row in rows if row["split"] == "val"]
    return (
        encode(training, tokenizer, prompt, length),
        encode(validation, tokenizer, prompt, length),
    )


def start_model(job: TrainingJob, fabric: L.Fabric) -> TwinGPT:
    """The base model with fresh LoRA weights, the same in every process for one seed."""
    fabric.seed_everything(job.train.seed, verbose=False)
    return build_model(
        fabric,
        job.checkpoint_dir,
        job.lora,
        job.train.max_seq_length,
        narrow_embedding=True,
        quantize=job.quantize,
    )


def train_in_processes(
    job: TrainingJob, run_dir: Path, on_progress: Callable[[Progress], None] | None = None
) -> TrainResult:
    """Run `job` in `job.world_size` ranks (this machine's share of them) and return
    rank 0's result. Blocks until they end; raises TrainingError if any failed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / JOB_FILE).write_text(job.model_dump_json(indent=1), encoding="utf-8")
    for stale in [run_dir / RESULT_FILE, *run_dir.glob("rank-*.error")]:
        stale.unlink(missing_ok=True)
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as log:
        ranks = subprocess.Popen(
            torchrun_command(job.train, run_dir),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            preexec_fn=_stop_with_parent,
        )
        try:
            assert ranks.stdout is not None
            for line in ranks.stdout:
                if line.startswith(_PROGRESS):
                    if on_progress is not None:
                        on_progress(Progress(**json.loads(line[len(_PROGRESS) :])))
                else:
                    log.write(line)
            code = ranks.wait()
        finally:
            if ranks.poll() is None:  # interrupted here: the ranks go too
                ranks.terminate()
                try:
                    ranks.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    ranks.kill()
    if code != 0 or not (run_dir / RESULT_FILE).is_file():
        raise TrainingError(_failure(run_dir, code, job.train.devices))
    saved = torch.load(run_dir / RESULT_FILE, weights_only=True)
    return TrainResult(**saved)


def join(run_dir: Path, node_rank: int) -> None:
    """This machine's ranks of a multi-node run whose job node 0 wrote into `run_dir` (a
    shared folder): they train beside the others until the run ends."""
    job = TrainingJob.model_validate_json((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    if not 0 < node_rank < job.train.num_nodes:
        raise TrainingError(
            f"--node-rank is 1 to {job.train.num_nodes - 1} for a run of "
            f"{job.train.num_nodes} machines (the main node is 0)"
        )
    command = torchrun_command(job.train, run_dir, node_rank)
    code = subprocess.run(command, preexec_fn=_stop_with_parent).returncode
    if code != 0:
        raise TrainingError(f"this machine's ranks ended without finishing (exit code {code})")


def torchrun_command(settings: TrainSettings, run_dir: Path, node_rank: int = 0) -> list[str]:
    """torchrun for this machine's ranks: node `node_rank` of a multi-node run, or the
    only node."""
    command = [sys.executable, "-m", "torch.distributed.run"]
    if settings.num_nodes == 1:
        command += ["--standalone"]  # a free port on this machine
    else:
        host, _, port = settings.main_node.rpartition(":")
        command += [
            f"--nnodes={settings.num_nodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={host}",
            f"--master-port={port}",
        ]
    return [*command, f"--nproc-per-node={settings.devices}", "-m", __name__, str(run_dir)]


def _stop_with_parent() -> None:
    """In the child, before it runs: SIGTERM when the parent dies (Linux; a no-op
    elsewhere). torchrun stops its ranks on SIGTERM."""
    name = ctypes.util.find_library("c")
    if name and sys.platform.startswith("linux"):
        ctypes.CDLL(name).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _failure(run_dir: Path, code: int, ranks: int) -> str:
    """One line for a run whose ranks did not all finish. A rank killed from outside
    leaves no error file, and the others then fail only because it went away, so a
    missing rank is the cause to name before any other rank's error."""
    errors = sorted(run_dir.glob("rank-*.error"))
    if code < 0:
        return f"training stopped: torchrun was ended by signal {-code}"
    if errors and len(errors) >= ranks:
        return errors[0].read_text(encoding="utf-8").strip()
    return (
        f"a training process ended without finishing (exit code {code}); "
        f"`twin train --resume` continues from the last checkpoint; "
        f"what the processes printed is in {run_dir / LOG_FILE}"
    )


def main(argv: list[str] | None = None) -> None:
    """One rank: train the job in RUN_DIR; rank 0 reports progress and saves the result."""
    run_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    rank = int(os.environ.get("RANK", "0"))
    try:
        job = TrainingJob.model_validate_json((run_dir / JOB_FILE).read_text(encoding="utf-8"))
        fabric = fabric_for(job)
        fabric.launch()  # under torchrun: joins the other ranks
        train_samples, val_samples = encoded_samples(job, Tokenizer(job.checkpoint_dir))
        model = start_model(job, fabric)
        lead = fabric.global_rank == 0
        plan = job.plan
        result = train(
            fabric,
            model,
            train_samples,
            fixed_order(val_samples)[: plan.checks] if plan else val_samples,
            job.train,
            run_dir,
            job.resume,
            _print_progress if lead else None,
            evaluation=plan.evaluation_seconds if plan else 0.0,
            speed=plan.speed if plan else None,
        )
        if lead:
            partial = run_dir / (RESULT_FILE + ".partial")
            torch.save(asdict(result), partial)
            os.replace(partial, run_dir / RESULT_FILE)
    except Exception as err:
        (run_dir / f"rank-{rank}.error").write_text(
            f"training failed in rank {rank}: {type(err).__name__}: {err}", encoding="utf-8"
        )
        traceback.print_exc()
        raise SystemExit(1) from None


def _print_progress(progress: Progress) -> None:
    print(_PROGRESS + json.dumps(asdict(progress)), flush=True)


if __name__ == "__main__":
    main()
