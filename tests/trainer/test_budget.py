"""The time budget's plan (trainer.budget): training keeps most of it, the periodic checks
and the final evaluation their shares, on any machine's speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.batches import Encoded
from trainer.budget import (
    CHECK_SHARE,
    CHECKS,
    EVALUATION_SHARE,
    MIN_BUDGET_BATCH,
    MIN_CHECK_SAMPLES,
    MIN_EVALUATED,
    SELECTION_SHARE,
    TARGET_STEPS,
    RunPlan,
    Speed,
    fixed_order,
    plan_run,
)
from trainer.recipe import resolve
from trainer.settings import TrainSettings

SAMPLE_TOKENS = 700  # a reply with its context and memories, as real samples run


def samples(count: int, tokens: int = SAMPLE_TOKENS) -> list[Encoded]:
    return [Encoded([n % 50] * tokens, tokens - 20) for n in range(count)]


# What a 2-core CPU does with the embedded model (bf16): 250 tokens/s training, three
# times that scoring; an AVX2 CPU without bf16 about a fifth of it.
FAST_CPU = Speed(train=250.0, forward=650.0, selection=400.0)
SLOW_CPU = Speed(train=50.0, forward=130.0, selection=80.0)


def planned(
    train: int, val: int, speed: Speed | None, tasks: int | None = None, **settings: object
) -> RunPlan:
    recipe = resolve(TrainSettings(**settings), train, "cpu" if speed else "cuda")
    tasks = val if tasks is None else tasks
    return plan_run(
        recipe,
        samples(train),
        samples(val),
        [2 * (SAMPLE_TOKENS + 640)] * tasks,  # a prompt and ten replies, both models
        loss_passes=2,
        speed=speed,
        batch_is_chosen="batch_size" not in settings,
    )


@pytest.mark.parametrize("speed", [FAST_CPU, SLOW_CPU])
@pytest.mark.parametrize(("train", "val"), [(300, 35), (1035, 259), (9000, 1000)])
def test_checks_and_evaluation_leave_most_of_the_budget_to_training(
    speed: Speed, train: int, val: int
) -> None:
    """A history of 1,035 replies took 4 optimizer steps in 15 minutes: a check of all
    259 held-out replies after each step ate the rest, and the evaluation took 24 more."""
    plan = planned(train, val, speed)
    budget, per_sample = 15 * 60, SAMPLE_TOKENS / speed.forward
    checks = CHECKS * plan.checks * per_sample
    losses = 2 * plan.evaluated * per_sample  # both models on the same held-out replies
    selection = (plan.selection_tasks or 0) * 2 * (SAMPLE_TOKENS + 640) / speed.selection
    assert plan.evaluation_seconds == pytest.approx(losses + selection)
    # Selection at the end costs a tenth of the run at most (twin eval has it all).
    assert selection <= SELECTION_SHARE * budget + 1e-6
    # Every held-out reply where the share allows it; else as many as it allows.
    if 2 * val * per_sample <= EVALUATION_SHARE * budget or val <= MIN_EVALUATED:
        assert plan.evaluated == val
    else:
        assert MIN_EVALUATED <= plan.evaluated < val
    assert plan.checks >= min(val, MIN_CHECK_SAMPLES)
    floor = CHECKS * MIN_CHECK_SAMPLES * per_sample  # the fewest checks worth making
    assert checks <= max(CHECK_SHARE * budget, floor) + 1e-6
    floor = 2 * MIN_EVALUATED * per_sample
    assert plan.evaluation_seconds <= max(EVALUATION_SHARE * budget, floor) + 1e-6
    if speed is FAST_CPU:  # on a CPU like the ones twin is measured on: most is training
        assert budget - plan.evaluation_seconds - checks > budget / 2


@pytest.mark.parametrize(
    "speed", [FAST_CPU, SLOW_CPU, Speed(train=2500.0, forward=6500.0, selection=4000.0)]
)
def test_the_batch_shrinks_until_enough_steps_fit_the_budget(speed: Speed) -> None:
    plan = planned(1035, 259, speed)
    default = resolve(TrainSettings(), 1035, "cpu").batch_size
    assert default == 32
    assert MIN_BUDGET_BATCH <= plan.batch_size <= default
    checks = CHECKS * plan.checks * SAMPLE_TOKENS / speed.forward
    training = 15 * 60 - plan.evaluation_seconds - checks
    steps = training * speed.train / (plan.batch_size * SAMPLE_TOKENS)
    assert steps >= TARGET_STEPS or plan.batch_size == MIN_BUDGET_BATCH
    if plan.batch_size < default:  # the largest batch that fits them
        assert training * speed.train / (2 * plan.batch_size * SAMPLE_TOKENS) < TARGET_STEPS


def test_what_the_user_set_stands_and_no_budget_cuts_nothing() -> None:
    assert planned(1035, 259, SLOW_CPU, batch_size=64).batch_size == 64
    gpu = planned(1035, 259, None)
    assert (gpu.batch_size, gpu.checks, gpu.evaluated, gpu.selection_tasks) == (32, 259, 259, None)
    assert gpu.evaluation_seconds == 0.0


def test_the_checks_take_a_fixed_subset_that_spans_the_held_out_set() -> None:
    val = [Encoded([n], 0) for n in range(200)]
    first = fixed_order(val)[:20]
    assert first == fixed_order(val)[:20]  # the same at every check and in every rank
    assert max(s.ids[0] for s in first) > 100  # not the first conversations only


def test_a_resumed_run_follows_the_plan_it_saved(tmp_path: Path) -> None:
    plan = planned(1035, 259, FAST_CPU)
    plan.save(tmp_path)
    assert RunPlan.load(tmp_path) == plan
    assert RunPlan.load(tmp_path / "elsewhere") is None
