"""LoRA fine-tuning: litgpt's LoRA model in a training loop of twin's own, on Fabric.

Why not litgpt's finetune script: what it does not do makes the difference on a CPU
and on small personal datasets. The output layer runs only at response tokens, a few
rows at a time (TwinGPT, trainer.loss); batches are built from samples of similar
length under a token budget instead of padding everything to one length; the run
plans its length into a time budget, measuring its own speed on the first steps, so
that the learning rate has decayed when time is up rather than being cut off at its
peak; it keeps the adapter with the best validation loss and stops when validation
stops improving; and it resumes exactly where it was killed (LoRA weights, optimizer,
RNG, step and schedule, saved atomically at every validation).

Several processes (GPUs, or CPU processes in tests) run the same loop under Fabric's
DDP: each rank takes its share of every step's micro-batches and of the validation
samples, and what the run decides from the clock (its length, running out of time) is
rank 0's decision, so that every rank takes the same steps. trainer.processes starts
the ranks.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch

from trainer.batches import Encoded, collate, micro_batches
from trainer.budget import CHECKS, Speed, fitting
from trainer.loss import batch_loss, loss_sums
from trainer.settings import TrainSettings
from twin.model.device import release_memory
from twin.model.lora import adapter_state, load_adapter

STATE_FILE = "state.pt"


@dataclass
class Progress:
    step: int
    total_steps: int
    loss: float
    tokens_per_s: float
    elapsed: float
    val_loss: float | None = None


@dataclass
class TrainResult:
    adapter: dict[str, torch.Tensor]
    steps: int
    total_steps: int
    tokens: int
    seconds: float
    stopped: str  # finished, time_budget, early_stop
    checking: float = 0.0  # of `seconds`, in the periodic checks
    best_step: int = 0  # the adapter kept: the step of the best validation loss
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def metrics(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "total_steps": self.total_steps,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 1),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "stopped": self.stopped,
            "best_step": self.best_step,
            "train_losses": self.train_losses,
            "val_losses": self.val_losses,
        }


MEASURED_STEPS = 3  # steps timed before the run's length is fixed


def plan_steps(samples: list[Encoded], settings: TrainSettings) -> list[list[list[int]]]:
    """Every optimizer step the epochs would take: its micro-batches, each a list of
    sample indexes. Fixed by the seed, so a resumed run replays the same order."""
    assert settings.batch_size is not None and settings.epochs is not None, "resolve() first"
    groups = micro_batches(samples, settings.micro_batch_tokens)
    steps: list[list[list[int]]] = []
    for epoch in range(settings.epochs):
        order = list(groups)
        random.Random(f"{settings.seed}:{epoch}").shuffle(order)
        step: list[list[int]] = []
        count = 0
        for group in order:
            step.append(group)
            count += len(group)
            if count >= settings.batch_size:
                steps.append(step)
                step, count = [], 0
        if step:
            steps.append(step)
    return steps[: settings.max_steps] if settings.max_steps else steps


@dataclass
class Schedule:
    """The run's length and rhythm: fixed once the first steps have been timed."""

    steps: int  # optimizer steps the run will take
    warmup: int
    eval_every: int
    fixed: bool = False  # the length has been fitted to the time budget

    def learning_rate(self, step: int, settings: TrainSettings) -> float:
        """Linear warmup, then cosine decay to min_lr_ratio of the peak at the last step."""
        peak = settings.learning_rate
        if step < self.warmup:
            return peak * (step + 1) / self.warmup
        span = max(1, self.steps - 1 - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        floor = peak * settings.min_lr_ratio
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def first_schedule(plan_length: int, settings: TrainSettings) -> Schedule:
    warmup = settings.warmup_steps or min(10, max(1, round(0.05 * plan_length)))
    every = settings.eval_interval or max(1, round(plan_length / CHECKS))
    return Schedule(plan_length, warmup, every, fixed=settings.max_minutes is None)


@dataclass(frozen=True)
class Reserve:
    """What training leaves of the time budget (trainer.budget plans it): the periodic
    checks, each scoring `check_tokens` at `forward` tokens/s, and the final evaluation.
    Without a measured speed, a check is taken for a third of a training step's work."""

    check_tokens: int = 0
    evaluation: float = 0.0  # seconds
    forward: float | None = None  # tokens/s

    def checks(self, count: int, train_rate: float) -> float:
        return count * self.check_tokens / (self.forward or 3 * train_rate)


def fit_to_budget(
    schedule: Schedule,
    step_tokens: list[int],
    done: int,
    seconds: float,
    rate: float,
    reserve: Reserve,
    settings: TrainSettings,
    checks: int = CHECKS,
) -> Schedule:
    """The schedule cut to the steps of `step_tokens` (the whole plan) that fit in the
    time budget at `rate` training tokens/s, `done` steps and `seconds` into the run,
    leaving the `checks` periodic checks still to come and the final evaluation their
    time."""
    assert settings.max_minutes is not None
    left = settings.max_minutes * 60 - seconds - reserve.evaluation
    left -= reserve.checks(checks, rate)
    steps = done + fitting(step_tokens[done:], left, rate)
    steps = min(len(step_tokens), max(steps, done + 1))  # one more at least, not past the plan
    every = settings.eval_interval or max(1, round(steps / CHECKS))
    warmup = min(schedule.warmup, max(1, steps // 10))
    return Schedule(steps, warmup, every, fixed=True)


def measure_speed(
    fabric: L.Fabric,
    model: torch.nn.Module,
    samples: list[Encoded],
    settings: TrainSettings,
    selection: Callable[[], int],
) -> Speed:
    """Tokens per second of training (forward and backward) and of scoring (forward),
    on a micro-batch of the run's own, of middling length, and of `selection` (scores
    a task and says its tokens): what trainer.budget plans with. The gradients are
    dropped and no weight changes. The first pass of each warms up (allocations,
    kernels) and is not counted."""
    groups = micro_batches(samples, settings.micro_batch_tokens)
    middle = sorted(groups, key=lambda g: sum(len(samples[i].ids) for i in g))[len(groups) // 2]
    batch = collate([samples[i] for i in middle]).to(fabric.device)
    was_training = model.training
    model.train()

    def trained() -> None:
        with fabric.autocast():  # as Fabric runs the training model's forward
            loss, _ = batch_loss(model, batch)
        loss.backward()

    def scored() -> None:
        with torch.no_grad(), fabric.autocast():
            batch_loss(model, batch)

    def timed(work: Callable[[], object]) -> float:
        started = time.perf_counter()
        work()
        return max(time.perf_counter() - started, 1e-9)

    rates = []
    for work in (trained, scored):
        work()
        rates.append(batch.tokens / timed(work))
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    release_memory()
    tokens = [0]
    seconds = timed(lambda: tokens.append(selection()))
    return Speed(train=rates[0], forward=rates[1], selection=tokens[-1] / seconds)


@dataclass
class _Best:
    loss: float = math.inf
    step: int = 0
    adapter: dict[str, torch.Tensor] = field(default_factory=dict)
    stale: int = 0  # validations since it improved


def train(
    fabric: L.Fabric,
    model: torch.nn.Module,
    train_samples: list[Encoded],
    val_samples: list[Encoded],
    settings: TrainSettings,
    run_dir: Path,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    evaluation: float = 0.0,
    speed: Speed | None = None,
) -> TrainResult:
    """Train the LoRA weights of `model` (built by model.lora.build_model); the adapter
    returned is the one with the best validation loss on `val_samples` (the periodic
    checks' samples). With a time budget, training ends `evaluation` seconds before
    it, for the evaluation that follows (and what the run spent before training);
    `speed` (measure_speed's) times the checks."""
    loop = _setup(fabric, model, train_samples, val_samples, settings, run_dir, evaluation, speed)
    if resume:
        loop.schedule, loop.best = _restore(
            run_dir / STATE_FILE, loop.raw_model, loop.optimizer, loop.result, len(loop.plan)
        )
    else:
        torch.manual_seed(settings.seed)
    loop.begin()
    _fit(loop, on_progress)
    return _finish(loop)


@dataclass
class _Loop:
    """One training run's state: the model (as Fabric wraps it, and the raw module whose
    LoRA weights are saved), the optimizer, every step's micro-batches, the schedule, the
    best adapter so far, and the result being filled in."""

    fabric: L.Fabric
    model: torch.nn.Module
    raw_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_samples: list[Encoded]
    val_samples: list[Encoded]
    settings: TrainSettings
    run_dir: Path
    plan: list[list[list[int]]]  # each optimizer step's micro-batches of sample indexes
    plan_tokens: list[int]  # each step's tokens
    reserve: Reserve
    evaluation: float  # seconds the budget keeps after training
    schedule: Schedule
    result: TrainResult
    best: _Best = field(default_factory=lambda: _Best())
    started: float = 0.0  # perf_counter at the run's start (a resumed run's, as if)
    since: tuple[int, float, float] = (0, 0.0, 0.0)  # tokens, seconds, checking at the last fit

    @property
    def budgeted(self) -> bool:
        return self.settings.max_minutes is not None

    def begin(self) -> None:
        """Start the clock where the run stands (a resumed run's seconds count)."""
        self.started = time.perf_counter() - self.result.seconds
        self.since = (self.result.tokens, self.result.seconds, self.result.checking)

    def now(self) -> float:
        return time.perf_counter() - self.started

    def refit(self) -> Schedule:
        """The length for the rest of the budget at the pace since the last fit (its
        checks left out): a run can slow as it goes (on a 2-core CPU from 290 tokens/s
        at the first step to under 200 over the run), so every check fits it again and
        the learning rate still ends decayed, within the budget."""
        result, schedule, now = self.result, self.schedule, self.now()
        tokens, seconds, checking = self.since
        if result.tokens == tokens:  # nothing trained since: the whole run's pace
            tokens, seconds, checking = 0, 0.0, 0.0
        rate = (result.tokens - tokens) / max(now - seconds - (result.checking - checking), 1e-9)
        self.since = (result.tokens, now, result.checking)
        checks = max(1, CHECKS - len(result.val_losses))
        fitted = fit_to_budget(
            schedule, self.plan_tokens, result.steps, now, rate, self.reserve, self.settings, checks
        )
        if schedule.fixed:  # checks stay evenly spaced: each window as long as the last
            fitted = replace(fitted, eval_every=schedule.eval_every)
        fitted = self.fabric.broadcast(fitted, src=0)  # rank 0's clock decides for all
        result.total_steps = fitted.steps
        return fitted


def _setup(
    fabric: L.Fabric,
    model: torch.nn.Module,
    train_samples: list[Encoded],
    val_samples: list[Encoded],
    settings: TrainSettings,
    run_dir: Path,
    evaluation: float,
    speed: Speed | None,
) -> _Loop:
    """The steps the epochs take, the optimizer on the LoRA weights, both set up by
    Fabric, and the first schedule."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_steps(train_samples, settings)
    if not plan:
        raise ValueError("no training samples")
    plan_tokens = [sum(len(train_samples[i].ids) for g in step for i in g) for step in plan]
    reserve = Reserve(
        sum(len(s.ids) for s in val_samples), evaluation, speed.forward if speed else None
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay, betas=(0.9, 0.95)
    )
    wrapped, optimizer = fabric.setup(model, optimizer)
    result = TrainResult(
        adapter={}, steps=0, total_steps=len(plan), tokens=0, seconds=0.0, stopped=""
    )
    schedule = _first_schedule(plan_tokens, settings, reserve, speed)
    return _Loop(
        fabric=fabric,
        model=wrapped,
        raw_model=model,
        optimizer=optimizer,
        train_samples=train_samples,
        val_samples=val_samples,
        settings=settings,
        run_dir=run_dir,
        plan=plan,
        plan_tokens=plan_tokens,
        reserve=reserve,
        evaluation=evaluation,
        schedule=schedule,
        result=result,
    )


def _first_schedule(
    plan_tokens: list[int], settings: TrainSettings, reserve: Reserve, speed: Speed | None
) -> Schedule:
    """Every epoch's steps; with a budget and the planning pass's speed, the steps that
    fit it, until the first steps are timed (the first progress line then shows the
    budget's steps, not every epoch's)."""
    schedule = first_schedule(len(plan_tokens), settings)
    if speed is None or schedule.fixed:
        return schedule
    guess = fit_to_budget(schedule, plan_tokens, 0, 0.0, speed.train, reserve, settings)
    timed = min(len(plan_tokens), MEASURED_STEPS)  # the run goes on to time them, then refits
    return replace(guess, steps=max(guess.steps, timed), fixed=False)


def _fit(loop: _Loop, on_progress: Callable[[Progress], None] | None) -> None:
    """Optimizer steps until the schedule's last, the budget's end or no more progress,
    checking the validation loss and saving the state on the schedule's rhythm."""
    result = loop.result
    loop.model.train()
    while result.steps < loop.schedule.steps:
        step_loss = _training_step(loop)
        if loop.budgeted and not loop.schedule.fixed and result.steps >= MEASURED_STEPS:
            loop.schedule = loop.refit()
        due = result.steps % loop.schedule.eval_every == 0 or result.steps == loop.schedule.steps
        val = _check(loop) if due and loop.val_samples else None
        if on_progress is not None:
            rate = result.tokens / max(result.seconds, 1e-9)
            on_progress(
                Progress(result.steps, loop.schedule.steps, step_loss, rate, result.seconds, val)
            )
        result.stopped = _stop_reason(loop)
        if due or result.stopped:
            _save_state(loop)
        if result.stopped:
            return
    result.stopped = "finished"


def _training_step(loop: _Loop) -> float:
    """One optimizer step over the plan's next micro-batches; its loss per target token.

    Summed over tokens, divided by the step's tokens: every response token weighs the
    same whatever micro-batch it fell in. Ranks average gradients, so each rank's share
    is scaled back up. A rank left without a micro-batch (a step of fewer micro-batches
    than ranks) still joins the exchange of gradients, with one that weighs nothing."""
    fabric, settings, result, samples = loop.fabric, loop.settings, loop.result, loop.train_samples
    step = result.steps
    for group in loop.optimizer.param_groups:
        group["lr"] = loop.schedule.learning_rate(step, settings)
    groups = loop.plan[step]
    step_targets = sum(samples[i].targets for g in groups for i in g)
    mine = groups[fabric.global_rank :: fabric.world_size]
    weight = fabric.world_size / step_targets
    if not mine:
        mine, weight = groups[:1], 0.0
    step_loss, step_tokens = 0.0, 0
    for position, group in enumerate(mine):
        batch = collate([samples[i] for i in group]).to(fabric.device)
        last = position == len(mine) - 1
        with fabric.no_backward_sync(loop.model, enabled=not last):
            # A sample longer than a micro-batch goes alone; recomputing its
            # activations keeps training memory where micro_batch_tokens puts it.
            oversize = batch.idx.numel() > settings.micro_batch_tokens
            recompute = settings.gradient_checkpointing or oversize
            loss, _ = batch_loss(loop.model, batch, recompute=recompute)
            fabric.backward(loss * weight)
        if weight:
            step_loss += loss.item()
            step_tokens += batch.tokens
    step_loss, step_tokens = summed(fabric, step_loss, step_tokens)
    result.tokens += int(step_tokens)
    loop.optimizer.step()
    loop.optimizer.zero_grad(set_to_none=True)
    release_memory()
    result.steps = step + 1
    result.seconds = loop.now()
    result.train_losses.append((result.steps, step_loss / step_targets))
    return step_loss / step_targets


def _check(loop: _Loop) -> float:
    """The periodic check: the validation loss, kept as the best adapter when it is the
    lowest so far; with a budget, the schedule fitted again to the pace since the last."""
    result = loop.result
    checking = time.perf_counter()
    val = validation_loss(
        loop.fabric, loop.model, loop.val_samples, loop.settings.micro_batch_tokens
    )
    result.checking += time.perf_counter() - checking
    result.val_losses.append((result.steps, val))
    if val < loop.best.loss:
        loop.best = _Best(val, result.steps, adapter_state(loop.raw_model))
    else:
        loop.best.stale += 1
    if loop.budgeted and result.steps < loop.schedule.steps:
        loop.schedule = loop.refit()
    return val


def _stop_reason(loop: _Loop) -> str:
    """Why the run stops before its schedule's last step ("" when it goes on): the
    budget would end within the next step, or the loss stopped improving. Every rank
    asks at every step (the broadcast is a collective), rank 0's clock answers."""
    settings, result = loop.settings, loop.result
    out_of_time = loop.fabric.broadcast(
        settings.max_minutes is not None
        and result.seconds + (result.seconds / result.steps) + loop.evaluation
        > settings.max_minutes * 60,
        src=0,
    )
    if result.steps >= loop.schedule.steps:
        return ""
    if out_of_time:
        return "time_budget"
    if settings.patience and loop.best.stale >= settings.patience:
        return "early_stop"
    return ""


def _finish(loop: _Loop) -> TrainResult:
    """The last step checked (if the rhythm left it out), the state saved, and the best
    adapter in the model and the result."""
    result, best = loop.result, loop.best
    if loop.val_samples and (not result.val_losses or result.val_losses[-1][0] != result.steps):
        val = validation_loss(
            loop.fabric, loop.model, loop.val_samples, loop.settings.micro_batch_tokens
        )
        result.val_losses.append((result.steps, val))
        if val < best.loss:
            loop.best = best = _Best(val, result.steps, adapter_state(loop.raw_model))
    _save_state(loop)
    result.adapter = best.adapter or adapter_state(loop.raw_model)
    result.best_step = best.step if best.adapter else result.steps
    load_adapter(loop.raw_model, result.adapter)
    return result


def _save_state(loop: _Loop) -> None:
    _save(
        loop.fabric,
        loop.run_dir / STATE_FILE,
        loop.raw_model,
        loop.optimizer,
        loop.result,
        loop.schedule,
        loop.best,
        len(loop.plan),
    )


def validation_loss(
    fabric: L.Fabric, model: torch.nn.Module, samples: list[Encoded], token_budget: int
) -> float:
    """Mean loss per response token over `samples`, each rank measuring its share."""
    share = samples[fabric.global_rank :: fabric.world_size]
    total, count = summed(fabric, *loss_sums(model, share, token_budget, fabric.device))
    return total / max(count, 1)


def summed(fabric: L.Fabric, *values: float) -> list[float]:
    """Each of `values` added up over the ranks (as it is, with one)."""
    if fabric.world_size == 1:
        return list(values)
    together = torch.tensor(values, dtype=torch.float64, device=fabric.device)
    return fabric.all_reduce(together, reduce_op="sum").tolist()


def _save(
    fabric: L.Fabric,
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
    schedule: Schedule,
    best: _Best,
    plan_length: int,
) -> None:
    """LoRA weights, optimizer, RNG, progress and schedule; written whole or not at all."""
    if fabric.global_rank != 0:
        return
    state = {
        "adapter": adapter_state(model),
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
        "steps": result.steps,
        "plan_length": plan_length,
        "tokens": result.tokens,
        "seconds": result.seconds,
        "checking": result.checking,
        "train_losses": result.train_losses,
        "val_losses": result.val_losses,
        "schedule": [schedule.steps, schedule.warmup, schedule.eval_every, schedule.fixed],
        "best": [best.loss, best.step, best.stale],
        "best_adapter": best.adapter,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _restore(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
    plan_length: int,
) -> tuple[Schedule, _Best]:
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: no {path}")
    state = torch.load(path, weights_only=True)  # tensors and numbers: no code runs
    steps, warmup, every, fixed = state["schedule"]
    if state["plan_length"] != plan_length:
        raise ValueError(
            "cannot resume: the samples or the settings changed since the run started "
            f"({state['plan_length']} steps planned then, {plan_length} now)"
        )
    load_adapter(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    result.steps = state["steps"]
    result.total_steps = steps
    result.tokens = state["tokens"]
    result.seconds = state["seconds"]
    result.checking = state.get("checking", 0.0)  # a state saved before it was kept
    result.train_losses = [tuple(x) for x in state["train_losses"]]
    result.val_losses = [tuple(x) for x in state["val_losses"]]
    loss, step, stale = state["best"]
    best = _Best(loss, int(step), state["best_adapter"], int(stale))
    return Schedule(int(steps), int(warmup), int(every), bool(fixed)), best
