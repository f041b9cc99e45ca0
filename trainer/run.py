"""A training run from start to finish: the job behind `twin train`, `/retrain` and the
nightly schedule.

Take the lock, build the dataset from the database, fine-tune, save the candidate
adapter, score it and the current one on the same validation samples, promote or
reject it, record everything in `training_runs`. It runs in its own process (whoever
asks for training starts `twin train`), and the lock in the database keeps two runs
from ever overlapping, even when started by different processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from litgpt import Tokenizer

from storage import BlockingDatabase, Database, StorageError
from storage import runs as runs_table
from storage.adapters import Adapter
from trainer.batches import Encoded
from trainer.budget import RunPlan, fitting, fixed_order, mean_tokens, plan_run
from trainer.errors import TrainingError
from trainer.evaluate import Meters, held_out, selection_order
from trainer.finetune import (
    STATE_FILE,
    Progress,
    TrainResult,
    measure_speed,
    train,
    validation_loss,
)
from trainer.loss import LossReport, NoMeter, mean_loss
from trainer.pairs import PairSet, demonstrated_pairs, feedback_pairs, hard_negative_pairs
from trainer.preference import Weights, prefer, refusal
from trainer.processes import (
    JOB_FILE,
    TrainingJob,
    encoded_samples,
    fabric_for,
    join,
    start_model,
    train_in_processes,
)
from trainer.recipe import resolve
from trainer.sense import (
    SelectionReport,
    SelectionTask,
    neutral_prompt,
    one_task,
    summary,
    task_cost,
    task_hits,
)
from trainer.settings import PreferenceSettings, TrainSettings
from twin.dataset.build import DatasetStats, build_dataset, read_samples
from twin.dataset.feedback import preferences_path, read_feedback
from twin.dataset.settings import DatasetSettings
from twin.engine.generate import ReplyEngine
from twin.memory.index import refresh
from twin.memory.settings import MemorySettings
from twin.model import registry
from twin.model.checkpoints import counter_of, prepare, read_config
from twin.model.device import choose_device, choose_precision, release_memory
from twin.model.lora import TwinGPT, adapter_state, load_adapter
from twin.model.qlora import bitsandbytes
from twin.model.settings import LoRASettings, ModelSettings
from twin.prompt.facts import owner_facts
from twin.prompt.memory import SampleMemory
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt

log = logging.getLogger(__name__)
SAMPLES_FILE = "samples.jsonl"
# Of the preference phase, what each of the gate's two selection passes (before and
# after the phase's steps) may take; at least MIN_GATE_TASKS tasks, where there are.
GATE_SHARE = 0.1
MIN_GATE_TASKS = 8
# The steps a preference phase must have room for, and the most of a budgeted run's
# training time it may take to have it (trainer.run._preference_plan).
MIN_PREFERENCE_STEPS = 4
MAX_PREFERENCE_SHARE = 0.5


@dataclass(frozen=True)
class RunConfig:
    """What a training run needs, and nothing else of twin's configuration."""

    data_dir: Path  # runs and adapters go here
    db_path: Path
    models_dir: Path  # base models (shared by every data directory that uses them)
    model: ModelSettings
    lora: LoRASettings
    train: TrainSettings
    preference: PreferenceSettings
    dataset: DatasetSettings
    prompt: PromptSettings
    memory: MemorySettings

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"


@dataclass
class RunReport:
    run_id: int
    adapter_id: int
    adapter_path: str
    promoted: bool
    reason: str
    base_loss: float
    adapter_loss: float
    reference: str
    reference_loss: float
    improvement: float  # relative to the base model
    selection: dict[str, Any]  # trainer.sense: base and adapter hits@1
    samples: dict[str, int]
    training: dict[str, Any] = field(default_factory=dict)
    preference: dict[str, Any] | None = None  # the preference phase, when it ran
    stages: dict[str, float] = field(default_factory=dict)  # seconds each stage took

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _begin(db: Database, trigger: str, resume: bool) -> tuple[int, bool]:
    """Take the lock (clearing one left by a process that died); (run id, resuming)."""
    await runs_table.release_stale(db)
    pid, host = os.getpid(), socket.gethostname()
    if resume:
        last = await runs_table.latest(db)
        if (
            last is not None
            and last.status in ("interrupted", "failed")
            and last.run_dir
            and (Path(last.run_dir) / STATE_FILE).is_file()
        ):
            await runs_table.take_over(db, last.id, pid, host)
            return last.id, True
        raise TrainingError("nothing to resume: the last run did not stop half-way")
    return await runs_table.start(db, trigger, pid, host), False


def run_training(
    config: RunConfig,
    trigger: str = "cli",
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    meters: Meters | None = None,
) -> RunReport:
    stage = on_stage or (lambda _: None)
    meters = meters or (lambda what, unit: NoMeter())
    if config.model.quantize:
        bitsandbytes()  # refused now, not after the dataset is built
    # One connection and one event loop for the whole run: progress is written every
    # few seconds, and each write would otherwise open both anew. The heartbeat has a
    # thread and a connection of its own, so that it beats through every stage.
    with BlockingDatabase(config.db_path) as store:
        run_id, resuming = store.run(lambda db: _begin(db, trigger, resume))
        run_dir = config.runs_dir / str(run_id)
        heartbeat = runs_table.Heartbeat(config.db_path, run_id)
        heartbeat.start()
        try:
            report = _run(config, store, run_id, run_dir, resuming, on_progress, stage, meters)
        except BaseException as err:
            status = "interrupted" if isinstance(err, KeyboardInterrupt | SystemExit) else "failed"
            message = str(err) or type(err).__name__
            store.run(lambda db: runs_table.finish(db, run_id, status, message))
            raise
        finally:
            heartbeat.stop()
        store.run(lambda db: runs_table.finish(db, run_id, "finished"))
    return report


def join_training(
    config: RunConfig,
    node_rank: int,
    wait: float = 1800,
    on_stage: Callable[[str], None] | None = None,
) -> None:
    """On another machine of a multi-node run: wait (up to `wait` seconds) for the main
    node's run to reach training, its job written in the shared data folder, then run
    this machine's ranks beside it."""
    deadline = time.monotonic() + wait
    stage = on_stage or (lambda _: None)
    stage("waiting for the main node's run to reach training")
    with BlockingDatabase(config.db_path) as store:
        while True:
            run = store.run(runs_table.running)
            if run is not None and run.run_dir and (Path(run.run_dir) / JOB_FILE).is_file():
                break
            if time.monotonic() > deadline:
                raise TrainingError(
                    f"no training run reached training within {wait / 60:.0f} minutes: "
                    "start twin train on the main node (train.main_node) with this data folder"
                )
            time.sleep(1)
    stage(f"training as machine {node_rank} of run {run.id}")
    join(Path(run.run_dir), node_rank)


def _run(
    config: RunConfig,
    store: BlockingDatabase,
    run_id: int,
    run_dir: Path,
    resuming: bool,
    on_progress: Callable[[Progress], None] | None,
    stage: Callable[[str], None],
    meters: Meters,
) -> RunReport:
    """A run's steps, in order: the base model, the dataset, the plan, training, the
    held-out evaluation, the adapter registered (and promoted if it is not worse)."""
    clock = _Stages(stage)
    base = _base(config, clock, show_progress=on_progress is not None)
    began = time.perf_counter()  # the budget's start: a first day's conversion is not the run's
    data = _data(config, store, run_id, run_dir, resuming, base, clock)
    setup = _setup(config, store, run_dir, resuming, base, data, clock)
    from_active = _starts_from_active(config, setup)
    phase, skipped = _preference_plan(config, setup, data, began, whole=from_active)
    start = setup.active if from_active and not skipped else None  # no supervised phase
    if start is not None:
        result = _active_start(setup, start, clock)
    else:
        record = _ProgressRecord(store, run_id, on_progress)
        result = _fit(setup, run_dir, resuming, record, began, phase, clock)
    preference = (
        {"skipped": skipped}
        if skipped
        else _prefer(config, run_dir, base, data, setup, result, phase, meters, clock)
    )
    if start is not None and preference is not None:
        preference["started_from"] = start.id
    scores = _evaluate(config, base, data, setup, result, meters, clock)
    clock.end()
    return _register(
        config, store, run_id, base, data, setup, result, preference, scores, clock.seconds
    )


@dataclass
class _Base:
    """The base model's folder, its name and tokenizer, and the prompt it is taught."""

    checkpoint_dir: Path
    name: str
    tokenizer: Tokenizer
    prompt: Prompt


@dataclass
class _Data:
    """The run's samples: the file (and its fingerprint, which names the dataset an
    adapter learned from), its rows, and the held-out ones among them."""

    path: Path
    fingerprint: str
    rows: list[dict[str, Any]]
    val_rows: list[dict[str, Any]]
    train_rows: list[dict[str, Any]]
    feedback: list[dict[str, Any]]  # the owner's decisions on drafts, beside the samples


@dataclass
class _Setup:
    """What training needs, planned: the job, the model (None while other processes
    train), the recipe with the plan's batch, the encoded samples, the selection tasks,
    and the adapter active before this run."""

    job: TrainingJob
    fabric: L.Fabric
    model: TwinGPT | None
    recipe: TrainSettings
    plan: RunPlan
    train_samples: list[Encoded]
    val_samples: list[Encoded]
    tasks: list[SelectionTask]
    active: Adapter | None


@dataclass
class _Scores:
    """The held-out numbers the registry judges the adapter by."""

    losses: LossReport
    selection: SelectionReport
    reference: str  # what the adapter is compared with: the base model or the active one
    reference_loss: float


def _base(config: RunConfig, clock: _Stages, show_progress: bool) -> _Base:
    clock("preparing the model")
    checkpoint_dir = prepare(config.model, config.models_dir, progress=show_progress)
    name = read_config(checkpoint_dir).name
    return _Base(checkpoint_dir, name, Tokenizer(checkpoint_dir), Prompt(config.prompt))


def _data(
    config: RunConfig,
    store: BlockingDatabase,
    run_id: int,
    run_dir: Path,
    resuming: bool,
    base: _Base,
    clock: _Stages,
) -> _Data:
    """The samples from the owner's chats, with the memories each reply would have had
    (a resumed run keeps the file it began with)."""
    path = run_dir / SAMPLES_FILE
    if not resuming:
        run_dir.mkdir(parents=True, exist_ok=True)
        memory = _sample_memory(config, store, base, clock) if config.memory.enabled else None
        clock("building the dataset")
        with memory or contextlib.nullcontext():
            stats = build_dataset(
                config.db_path,
                path,
                config.dataset,
                SampleMaker(config.prompt),
                base.checkpoint_dir,
                enrich=memory,
            )
        _require_samples(stats)
        if memory is not None:
            log.info("memory: %d samples recalled past exchanges", memory.recalled)
    fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()
    store.run(
        lambda db: runs_table.update(
            db, run_id, run_dir=str(run_dir), dataset_fingerprint=fingerprint
        )
    )
    rows = read_samples(path)
    return _Data(
        path,
        fingerprint,
        rows,
        [s for s in rows if s.get("split") == "val"],
        [s for s in rows if s.get("split") == "train"],
        read_feedback(preferences_path(path)),
    )


def _setup(
    config: RunConfig,
    store: BlockingDatabase,
    run_dir: Path,
    resuming: bool,
    base: _Base,
    data: _Data,
    clock: _Stages,
) -> _Setup:
    """The job, the model, and how the run spends its budget (a resumed run follows the
    plan it saved)."""
    clock("planning the run")
    device = choose_device(config.model.device)
    job = TrainingJob(
        checkpoint_dir=base.checkpoint_dir,
        samples=data.path,
        lora=config.lora,
        train=config.train,
        prompt=config.prompt,
        device=device,
        precision=choose_precision(device, config.model.precision),
        quantize=config.model.quantize,
        resume=resuming,
    )
    train_samples, val_samples = encoded_samples(job, base.tokenizer)
    length = config.train.max_seq_length
    tasks = selection_order(data.val_rows, base.tokenizer, base.prompt, length, data.rows)
    active = store.run(lambda db: registry.active_for(db, base.name))
    fabric = fabric_for(job, one_process=True)
    model = start_model(job, fabric)
    recipe = resolve(config.train, len(train_samples), device)
    plan = RunPlan.load(run_dir) if resuming else None
    if plan is None:
        neutral = neutral_prompt(base.tokenizer, base.prompt)
        plan = _plan(
            config, recipe, fabric, model, train_samples, val_samples, tasks, neutral, active
        )
        plan.save(run_dir)
    recipe = recipe.model_copy(update={"batch_size": plan.batch_size})
    job = job.model_copy(update={"train": recipe, "plan": plan})
    return _Setup(job, fabric, model, recipe, plan, train_samples, val_samples, tasks, active)


def _fit(
    setup: _Setup,
    run_dir: Path,
    resuming: bool,
    record: Callable[[Progress], None],
    began: float,
    preference: float | None,
    clock: _Stages,
) -> TrainResult:
    """Train the adapter: here, or in the job's processes (several devices or machines),
    after which this process starts a model of its own to evaluate what rank 0 learned.
    `preference`: the seconds the preference phase will take after it."""
    clock("training")
    if setup.job.world_size > 1:
        setup.model = None  # the ranks hold their own while they train
        release_memory()
        result = train_in_processes(setup.job, run_dir, record)
        setup.model = start_model(setup.job, setup.fabric)
        return result
    assert setup.model is not None
    return train(
        setup.fabric,
        setup.model,
        setup.train_samples,
        fixed_order(setup.val_samples)[: setup.plan.checks],
        setup.recipe,
        run_dir,
        resuming,
        record,
        # What the run spent before training (the dataset, memory, planning: about 10 s)
        # is not training's either, nor what the preference phase will take.
        evaluation=setup.plan.evaluation_seconds + time.perf_counter() - began + (preference or 0),
        speed=setup.plan.speed,
    )


def _starts_from_active(config: RunConfig, setup: _Setup) -> bool:
    """Whether the preference phase starts from the active adapter, with no supervised
    phase (preference.start = "active"): it must have this run's LoRA shape."""
    settings, active = config.preference, setup.active
    if not settings.enabled or settings.start != "active" or active is None:
        return False
    if setup.job.world_size > 1:
        return False
    return registry.read_meta(Path(active.path)).get("lora") == config.lora.model_dump()


def _active_start(setup: _Setup, active: Adapter, clock: _Stages) -> TrainResult:
    """The active adapter in the model, as the supervised phase would have left its own:
    what the preference phase starts from, and falls back to."""
    assert setup.model is not None
    clock("training", f"(none: starting from adapter {active.id})")
    adapter = registry.load(Path(active.path))
    load_adapter(setup.model, adapter)
    stopped = f"started from adapter {active.id}"
    return TrainResult(adapter, steps=0, total_steps=0, tokens=0, seconds=0.0, stopped=stopped)


def _unchanged(preference: dict[str, Any] | None) -> str | None:
    """Why the run's adapter is the active one as it was, if it is: the run began from
    the active adapter (no supervised phase) and its preference phase was not kept."""
    if not preference or "started_from" not in preference or preference.get("kept"):
        return None
    return f"the preference phase was not kept: adapter {preference['started_from']} stays"


def _preference_plan(
    config: RunConfig, setup: _Setup, data: _Data, began: float, whole: bool = False
) -> tuple[float | None, str | None]:
    """The seconds the preference phase takes of the training time a budgeted run has
    left, and why it is skipped, if it is. Its share, or more where its fixed work (the
    reference pass over every pair, the checks and the gate's selection before and
    after, the guesses) would leave no room for MIN_PREFERENCE_STEPS steps, up to
    MAX_PREFERENCE_SHARE; where even that is too little the phase is skipped before the
    supervised phase starts, which keeps the time. (None, None): no budget (a GPU); the
    phase takes what its passes take. On real typed chat on 2 CPU cores, at a 5-minute
    budget, the fixed work took the whole of the phase's 104 s and left no step. `whole`:
    the phase has no supervised phase before it and takes all of the training time."""
    settings, speed = config.preference, setup.plan.speed
    if not settings.enabled or speed is None:
        return None, None
    assert setup.recipe.max_minutes is not None
    left = setup.recipe.max_minutes * 60 - setup.plan.evaluation_seconds
    left = max(left - (time.perf_counter() - began), 0.0)
    needed = _preference_needs(settings, setup, data)
    share, most = (1.0, 1.0) if whole else (settings.share, MAX_PREFERENCE_SHARE)
    seconds = min(max(share * left, needed), most * left)
    if seconds < needed:
        return None, (
            f"too little time: {MIN_PREFERENCE_STEPS} steps need about {needed:.0f} s, "
            f"the budget leaves {seconds:.0f} s (a longer train.max_minutes, or a GPU)"
        )
    return seconds, None


def _preference_needs(settings: PreferenceSettings, setup: _Setup, data: _Data) -> float:
    """Seconds the phase needs for MIN_PREFERENCE_STEPS steps at the measured speed."""
    speed = setup.plan.speed
    assert speed is not None
    checks = fixed_order(setup.val_samples)[: setup.plan.checks]
    check = sum(len(s.ids) for s in checks) / speed.forward
    gate = sum(task_cost(t) // 2 for t in setup.tasks[:MIN_GATE_TASKS]) / speed.selection
    pair_tokens = 2 * mean_tokens(setup.train_samples)  # a pair: two samples' length
    pairs = len(data.feedback) + settings.demonstrated + settings.hard_negatives
    reference = pairs * pair_tokens / speed.forward
    step = min(settings.batch, max(pairs, 1)) * pair_tokens / speed.train
    needed = 2 * (check + gate) + reference + MIN_PREFERENCE_STEPS * step
    return 2 * needed if settings.demonstrated else needed  # guesses take the first half


def _prefer(
    config: RunConfig,
    run_dir: Path,
    base: _Base,
    data: _Data,
    setup: _Setup,
    result: TrainResult,
    seconds: float | None,
    meters: Meters,
    clock: _Stages,
) -> dict[str, Any] | None:
    """The preference phase: the owner's feedback and the demonstrated pairs learned on
    top of the supervised adapter, kept only if the validation loss (the periodic
    checks' replies) rises by no more than max_loss_increase and memory-off selection
    (on the held-out tasks `_gate_tasks` affords) does not fall beyond its interval
    (trainer.preference.refusal). What it did, for the report; None when it is off."""
    settings, model = config.preference, setup.model
    if not settings.enabled:
        return None
    assert model is not None
    if setup.job.world_size > 1:
        log.info("preference phase skipped: it runs in one process only, for now")
        return {"skipped": "several training processes"}
    started = time.perf_counter()
    ends = None if seconds is None else started + seconds
    halfway = None if ends is None else started + (ends - started) / 2  # the guesses' end
    found = _preference_pairs(config, run_dir, base, data, setup, result, halfway, meters, clock)
    gate = _Gate(config, base, setup, seconds)
    before = gate.measure(model)
    passes = max(len(found.pairs), len(found.signals))
    outcome = prefer(
        setup.fabric,
        model,
        found.pairs,
        found.signals,
        Weights(beta=settings.beta, likelihood=settings.likelihood),
        steps=-(-2 * passes // settings.batch),  # two passes over the larger kind
        batch=settings.batch,
        learning_rate=settings.learning_rate,
        deadline=None if ends is None else ends - before.seconds,  # the check after takes as long
        seed=config.train.seed,
    )
    after = gate.measure(model) if outcome.steps else before
    selection = summary(gate.tasks, before.hits, after.hits)  # "base": the supervised adapter
    refused = refusal(before.loss, after.loss, selection, settings.max_loss_increase)
    kept = outcome.steps > 0 and refused is None
    if kept:
        result.adapter = adapter_state(model)
    else:
        load_adapter(model, result.adapter)
    return {
        "pairs": len(found.pairs),
        "signals": len(found.signals),
        "sources": dict(sorted(found.sources.items())),
        "dropped": dict(sorted(found.dropped.items())),
        "steps": outcome.steps,
        "stopped": outcome.stopped,
        "accuracy": outcome.accuracy,
        "chosen_change": outcome.chosen_change,
        "val_loss_before": before.loss,
        "val_loss_after": after.loss,
        "selection_tasks": selection.tasks,
        "selection_before": selection.base,
        "selection_after": selection.adapter,
        "selection_change_ci95": selection.difference_ci95,
        "refused": refused,
        "kept": kept,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _preference_pairs(
    config: RunConfig,
    run_dir: Path,
    base: _Base,
    data: _Data,
    setup: _Setup,
    result: TrainResult,
    halfway: float | None,
    meters: Meters,
    clock: _Stages,
) -> PairSet:
    """What the phase learns from: the owner's feedback on drafts, the supervised
    adapter's guesses against his replies (in the first half of the phase's time), and
    his replies against his replies from other conversations (hard negatives)."""
    settings, length = config.preference, config.train.max_seq_length
    found = feedback_pairs(data.feedback, base.tokenizer, length)
    count = settings.demonstrated
    guessing = f"; guessing {count} of your replies first" if count else ""
    clock(
        "learning your preferences",
        f"({len(found.pairs)} pairs and {len(found.signals)} signals from your drafts{guessing})",
    )
    if count:
        found.add(_demonstrated(config, run_dir, base, data, setup, result, halfway, meters))
    if settings.hard_negatives:
        found.add(
            hard_negative_pairs(
                data.train_rows, base.tokenizer, base.prompt, settings.hard_negatives, length
            )
        )
    return found


@dataclass(frozen=True)
class _Measured:
    loss: float
    hits: list[bool]
    seconds: float


class _Gate:
    """What the phase's adapter is judged by, before its steps and after: the validation
    loss on the periodic checks' replies and memory-off selection on `_gate_tasks`."""

    def __init__(self, config: RunConfig, base: _Base, setup: _Setup, seconds: float | None):
        self.checks = fixed_order(setup.val_samples)[: setup.plan.checks]
        self.tasks = _gate_tasks(setup, seconds)
        self.neutral = neutral_prompt(base.tokenizer, base.prompt)
        self.budget = config.train.micro_batch_tokens
        self.fabric = setup.fabric

    def measure(self, model: TwinGPT) -> _Measured:
        began = time.perf_counter()
        loss = validation_loss(self.fabric, model, self.checks, self.budget)
        hits = task_hits(model, self.tasks, self.neutral, self.fabric.device)
        return _Measured(loss, hits, time.perf_counter() - began)


def _gate_tasks(setup: _Setup, seconds: float | None) -> list[SelectionTask]:
    """The held-out selection tasks the gate judges the phase by, in evaluation order:
    as many as one pass of GATE_SHARE of the phase's `seconds` scores (at least
    MIN_GATE_TASKS); without a budget, those the final evaluation scores."""
    tasks, speed = setup.tasks, setup.plan.speed
    if seconds is None or speed is None:
        return tasks[: setup.plan.selection_tasks]
    fit = fitting([task_cost(t) // 2 for t in tasks], GATE_SHARE * seconds, speed.selection)
    return tasks[: max(fit, MIN_GATE_TASKS)]


def _demonstrated(
    config: RunConfig,
    run_dir: Path,
    base: _Base,
    data: _Data,
    setup: _Setup,
    result: TrainResult,
    deadline: float | None,
    meters: Meters,
) -> PairSet:
    """The supervised adapter's own guesses at training replies, against the owner's:
    generated by the reply engine as it would serve the adapter (kept in the run's
    folder as `supervised/`), no guess begun after `deadline`."""
    count = config.preference.demonstrated
    meter = meters("guess", "reply")
    meter.expect(count)
    supervised = registry.save(
        run_dir / "supervised", result.adapter, {"lora": config.lora.model_dump()}
    )
    length = config.train.max_seq_length
    engine = ReplyEngine(
        base.checkpoint_dir, base.prompt, setup.job.precision, setup.job.device, length, config.lora
    )
    engine.use_adapter(supervised)
    try:
        return demonstrated_pairs(
            engine, data.train_rows, base.prompt, count, length, deadline, meter
        )
    finally:
        del engine
        release_memory()


def _evaluate(
    config: RunConfig,
    base: _Base,
    data: _Data,
    setup: _Setup,
    result: TrainResult,
    meters: Meters,
    clock: _Stages,
) -> _Scores:
    """Base model and adapter on the held-out replies the plan affords (loss, and
    selection within its share), then the active adapter's loss on the same replies."""
    plan, model, device = setup.plan, setup.model, setup.fabric.device
    assert model is not None
    clock("evaluating", _evaluating(len(setup.val_samples), plan))
    meter = meters("evaluate", "token")
    evaluated = fixed_order(setup.val_samples)[: plan.evaluated]
    if setup.active is not None:  # its loss too, after both models' (held_out announces those)
        meter.expect(sum(len(s.ids) for s in evaluated))
    budget = config.train.micro_batch_tokens
    losses, selection = held_out(
        model,
        result.adapter,
        fixed_order(data.val_rows)[: plan.evaluated],
        base.tokenizer,
        base.prompt,
        config.train.max_seq_length,
        budget,
        device,
        selection_limit=plan.selection_tasks,
        every_task=setup.tasks,
        meter=meter,
    )
    if setup.active is None:
        return _Scores(losses, selection, "the base model", losses.base_loss)
    load_adapter(model, registry.load(Path(setup.active.path)))
    reference_loss = mean_loss(model, evaluated, budget, device, meter)
    return _Scores(losses, selection, f"adapter {setup.active.id}", reference_loss)


def _register(
    config: RunConfig,
    store: BlockingDatabase,
    run_id: int,
    base: _Base,
    data: _Data,
    setup: _Setup,
    result: TrainResult,
    preference: dict[str, Any] | None,
    scores: _Scores,
    stages: dict[str, float],
) -> RunReport:
    """Save the adapter with what it learned from and how it scored, register it, and
    let the registry decide whether it replaces the active one."""
    metrics = _metrics(data, setup, result, preference, scores, stages)
    meta = _adapter_meta(config, run_id, base, data, setup, metrics)
    path = registry.save(config.adapters_dir, result.adapter, meta)
    loss = scores.losses.adapter_loss

    async def register(db: Database) -> tuple[int, registry.Decision]:
        adapter_id = await registry.register(db, path, meta, run_id, loss)
        decision = await registry.decide(
            db, adapter_id, loss, scores.reference_loss, scores.reference, _unchanged(preference)
        )
        verdict = {"promoted": decision.promoted, "reason": decision.reason}
        await runs_table.update(db, run_id, adapter_id=adapter_id, metrics={**metrics, **verdict})
        return adapter_id, decision

    adapter_id, decision = store.run(register)
    return RunReport(
        run_id=run_id,
        adapter_id=adapter_id,
        adapter_path=str(path),
        promoted=decision.promoted,
        reason=decision.reason,
        base_loss=scores.losses.base_loss,
        adapter_loss=loss,
        reference=scores.reference,
        reference_loss=scores.reference_loss,
        improvement=scores.losses.improvement,
        selection=scores.selection.as_dict(),
        samples={"train": len(setup.train_samples), "val": len(setup.val_samples)},
        training=metrics["training"],
        preference=preference,
        stages=stages,
    )


def _metrics(
    data: _Data,
    setup: _Setup,
    result: TrainResult,
    preference: dict[str, Any] | None,
    scores: _Scores,
    stages: dict[str, float],
) -> dict[str, Any]:
    """The run's numbers as the registry and `twin train --json` keep them."""
    return {
        # The newest reply this adapter learned from: scheduled retraining counts the
        # owner's messages after it.
        "data_until": max(s["date"] for s in data.rows),
        "training": {
            **result.metrics(),
            "batch_size": setup.recipe.batch_size,
            "checked_samples": setup.plan.checks,
            "evaluated_samples": setup.plan.evaluated,
        },
        "preference": preference,
        "evaluation": scores.losses.as_dict(),
        "selection": scores.selection.as_dict(),
        "reference": scores.reference,
        "reference_loss": scores.reference_loss,
        "precision": setup.job.precision,
        "device": setup.job.device,
        "stages": stages,
    }


def _adapter_meta(
    config: RunConfig,
    run_id: int,
    base: _Base,
    data: _Data,
    setup: _Setup,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """What the adapter's folder says about it: the base it fits, the data and settings
    it learned from, and whether it is served with memory."""
    return {
        "base_model": base.name,
        "checkpoint": str(base.checkpoint_dir),
        "dataset_fingerprint": data.fingerprint,
        "dataset": str(data.path),
        "created": int(time.time()),
        "run_id": run_id,
        "lora": config.lora.model_dump(),
        "train": setup.recipe.model_dump(),
        "prompt": config.prompt.model_dump(),
        # Served with memory only when trained with it: the prompt it learned from.
        "memory": config.memory.enabled,
        "metrics": metrics,
    }


def _plan(
    config: RunConfig,
    recipe: TrainSettings,
    fabric: L.Fabric,
    model: TwinGPT,
    train_samples: list[Encoded],
    val_samples: list[Encoded],
    tasks: list[SelectionTask],
    neutral: list[int],
    active: Adapter | None,
) -> RunPlan:
    """How this run spends its time budget (trainer.budget), from this machine's speed
    measured on the run's own samples and its selection `tasks` (in evaluation order);
    a resumed run follows the plan it saved."""
    speed = None
    if recipe.max_minutes is not None:
        first = tasks[0] if tasks else None

        def selection() -> int:  # one task timed, where there is one
            return one_task(model, first, neutral, fabric.device) if first else 0

        speed = measure_speed(fabric, model, train_samples, recipe, selection)
        if first is None:  # nothing to select: any rate plans the same (no tasks)
            speed = dataclasses.replace(speed, selection=speed.forward)
    return plan_run(
        recipe,
        train_samples,
        val_samples,
        [task_cost(task) for task in tasks],
        loss_passes=2 if active is None else 3,  # base, adapter (and the active adapter)
        speed=speed,
        batch_is_chosen=config.train.batch_size is None,
    )


def _evaluating(held_out: int, plan: RunPlan) -> str:
    what = f"on all {held_out:,} held-out replies"
    if plan.evaluated < held_out:
        what = f"on {plan.evaluated:,} of {held_out:,} held-out replies (what the budget allows)"
    if plan.speed is not None:
        what += f", planned {plan.evaluation_seconds / 60:.1f} min"
    return what


class _Stages:
    """Says each stage of the run as it begins, and keeps how long each took."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.seconds: dict[str, float] = {}
        self.current: tuple[str, float] | None = None

    def __call__(self, name: str, detail: str = "") -> None:
        self.end()
        self.say(f"{name} {detail}".strip())
        self.current = (name, time.perf_counter())

    def end(self) -> None:
        if self.current is not None:
            name, started = self.current
            self.seconds[name] = round(time.perf_counter() - started, 1)
            self.current = None


def _sample_memory(
    config: RunConfig, store: BlockingDatabase, base: _Base, clock: _Stages
) -> SampleMemory:
    """The exchanges index brought up to the history, and what gives every sample the
    memories a reply at its time would have had."""
    clock("indexing memories")
    report = store.run(lambda db: refresh(db, config.dataset, config.prompt.burst_separator))
    log.info("memory: %d exchanges indexed in %.1f s", report.exchanges, report.seconds)
    facts = store.run(lambda db: owner_facts(db, config.memory))
    measure = counter_of(base.tokenizer)
    return SampleMemory(config.db_path, base.prompt, config.memory, measure, facts)


def _require_samples(stats: DatasetStats) -> None:
    if stats.samples["train"] == 0:
        raise TrainingError(
            "no training samples: import your chats first (twin import), and check that "
            "dataset settings do not exclude them"
        )
    if stats.samples["val"] == 0:
        raise TrainingError(
            "no validation samples: dataset.val_fraction is 0 or there are too few "
            "conversations to hold any out; the twin is never promoted without them"
        )


class _ProgressRecord:
    """Records progress in the run's row (at most every few seconds; /status shows it)
    and passes it on. A write that fails is skipped, never fatal: the next one comes
    seconds later, and the run matters more than its progress line."""

    def __init__(
        self, store: BlockingDatabase, run_id: int, then: Callable[[Progress], None] | None
    ) -> None:
        self.store, self.run_id, self.then = store, run_id, then
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self.last >= runs_table.HEARTBEAT_SECONDS or progress.step == progress.total_steps:
            self.last = now
            try:
                self.store.run(
                    lambda db: runs_table.update(
                        db,
                        self.run_id,
                        step=progress.step,
                        total_steps=progress.total_steps,
                        metrics={"loss": progress.loss, "tokens_per_s": progress.tokens_per_s},
                    ),
                )
            except (StorageError, sqlite3.Error) as err:
                log.warning("progress not recorded (%s); the run goes on", err)
        if self.then is not None:
            self.then(progress)
