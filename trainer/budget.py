"""How a run spends its time budget (`train.max_minutes`; 15 minutes on a CPU).

A run is training, periodic checks of the validation loss (the adapter kept is the
best one), and one evaluation at the end: the loss of the new adapter and of the model
it must beat (promotion is decided on it), then selection (trainer.sense). On a CPU
each costs minutes, and unplanned they ate the budget: a history of 1,035 replies took
4 optimizer steps in 15 minutes, checking all 259 held-out replies after each, then
evaluated for 24 minutes more. So the run measures its speed on a few micro-batches
before it starts (`Speed`) and plans:

- the final evaluation, in EVALUATION_SHARE of the budget: the losses on every held-out
  reply where they fit, else on as many as fit (at least MIN_EVALUATED) taken in a
  fixed random order that spans the held-out conversations, the same for both models;
  selection on as many replies as the rest of the share allows, in SELECTION_SHARE at
  the most;
- the periodic checks, in CHECK_SHARE: the first replies of the same order, the same at
  every check, as many as fit CHECKS checks (at least MIN_CHECK_SAMPLES);
- training, the rest, with a batch small enough that TARGET_STEPS optimizer steps fit
  (a batch of 32 took a minute a step on a 2-core CPU: 13 steps learned little).

`twin eval` scores every held-out reply, whatever it costs. The plan is saved with the
run: a resumed run follows it. Without a budget (a GPU) nothing is cut.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from trainer.batches import Encoded
from trainer.settings import TrainSettings

CHECKS = 8  # periodic checks of the validation loss per run (trainer.finetune)
CHECK_SHARE = 0.1  # of the budget, for all periodic checks together
EVALUATION_SHARE = 0.25  # of the budget, for the final evaluation
# Of the budget, for selection at the end, at the most: the gate compares losses, and
# selection with its intervals is twin eval's; a run scores what this share allows.
SELECTION_SHARE = 0.1
MIN_CHECK_SAMPLES = 16  # fewer make the best adapter a matter of noise
MIN_EVALUATED = 48  # held-out replies promotion is decided on, at the least
# Measured on real typed chat (a Chit-Chat Challenge participant: 759 training replies,
# 420 tokens a sample), the same 175k training tokens (a 15-minute CPU run) in batches
# of 32, 8, 4 and 2: 13, 52, 104 and 209 steps took the held-out loss from 3.320 to
# 3.139, 3.094, 3.073 and 3.069, selection from 35 % to 39, 45, 47 and 49 %.
TARGET_STEPS = 100  # optimizer steps a budgeted run should take, at the least
MIN_BUDGET_BATCH = 4  # below it, more steps brought little (batch 2 over 4, above)
PLAN_FILE = "plan.json"
T = TypeVar("T")


@dataclass(frozen=True)
class Speed:
    """Tokens per second this machine trains at (forward and backward), scores losses at
    (forward only), and scores selection tasks at (trainer.sense.task_cost's tokens:
    slower, as every candidate token goes through the 262k-token output layer),
    measured on the run's own samples."""

    train: float
    forward: float
    selection: float


@dataclass(frozen=True)
class RunPlan:
    """What the budget decided, saved with the run (resumed runs follow it)."""

    batch_size: int  # samples per optimizer step
    checks: int  # held-out samples in every periodic check (the first of `fixed_order`)
    evaluated: int  # held-out samples the final losses are measured on (the first, too)
    selection_tasks: int | None  # tasks selection scores at the end; None: all
    evaluation_seconds: float  # the final evaluation, planned: training leaves it room
    speed: Speed | None  # what it was planned from; None: no budget

    def save(self, run_dir: Path) -> None:
        (run_dir / PLAN_FILE).write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, run_dir: Path) -> RunPlan | None:
        path = run_dir / PLAN_FILE
        if not path.is_file():
            return None
        saved = json.loads(path.read_text(encoding="utf-8"))
        speed = saved.pop("speed")
        return cls(**saved, speed=Speed(**speed) if speed else None)


def plan_run(
    settings: TrainSettings,
    train: list[Encoded],
    val: list[Encoded],
    selection_costs: list[int],
    loss_passes: int,
    speed: Speed | None,
    batch_is_chosen: bool = True,
) -> RunPlan:
    """The plan of a run whose recipe is resolved (trainer.recipe), from its samples,
    the forward tokens each selection task costs (both models, in the order they would
    be taken), how many times the final evaluation scores every held-out sample, and
    the measured speed (None: no time budget). `batch_is_chosen`: the batch is the
    recipe's choice, not the user's, and the budget may make it smaller."""
    assert settings.batch_size is not None, "resolve() first"
    if settings.max_minutes is None or speed is None:
        return RunPlan(settings.batch_size, len(val), len(val), None, 0.0, None)
    budget, rate = settings.max_minutes * 60, speed.forward
    costs = [len(s.ids) for s in fixed_order(val)]
    share = EVALUATION_SHARE * budget
    evaluated = min(
        len(val), max(fitting([loss_passes * c for c in costs], share, rate), MIN_EVALUATED)
    )
    losses = loss_passes * sum(costs[:evaluated]) / rate
    tasks = fitting(selection_costs, min(share - losses, SELECTION_SHARE * budget), speed.selection)
    evaluation = losses + sum(selection_costs[:tasks]) / speed.selection
    checks = fitting(costs, CHECK_SHARE * budget / CHECKS, rate)
    checks = min(len(val), max(checks, MIN_CHECK_SAMPLES))
    check_seconds = CHECKS * sum(costs[:checks]) / rate
    training = max(budget - evaluation - check_seconds, 0.0)
    batch = settings.batch_size
    if batch_is_chosen:
        batch = budget_batch(batch, training * speed.train, mean_tokens(train))
    return RunPlan(batch, checks, evaluated, tasks, evaluation, speed)


def budget_batch(batch: int, tokens: float, per_sample: float) -> int:
    """The batch halved (not below MIN_BUDGET_BATCH) until TARGET_STEPS steps of it fit
    in `tokens` of training."""
    while batch > MIN_BUDGET_BATCH and tokens / (batch * per_sample) < TARGET_STEPS:
        batch //= 2
    return max(batch, min(MIN_BUDGET_BATCH, batch))


def fixed_order(held_out: list[T]) -> list[T]:
    """The held-out samples (encoded, or as rows: the same order for both) in the fixed
    random order the checks and the evaluation take them in: a prefix of it spans the
    held-out conversations rather than the first of them."""
    order = list(range(len(held_out)))
    random.Random("held-out").shuffle(order)
    return [held_out[i] for i in order]


def mean_tokens(samples: list[Encoded]) -> float:
    return sum(len(s.ids) for s in samples) / max(1, len(samples))


def fitting(costs: list[int], seconds: float, rate: float) -> int:
    """How many of `costs` (tokens, taken in order) fit in `seconds` at `rate`."""
    left, count = seconds * rate, 0
    for cost in costs:
        if cost > left:
            break
        left -= cost
        count += 1
    return count
