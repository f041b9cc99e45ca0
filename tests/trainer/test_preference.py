"""The preference phase's losses on the tiny model: pairs learned without giving up the
chosen reply's likelihood, single signals pushed the way the owner judged them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from litgpt import Tokenizer

from storage import Database, with_database
from storage import drafts as drafts_table
from storage import runs as runs_table
from tests.exports import import_into
from tests.trainer.test_finetune import config_for
from trainer.batches import Encoded, encode
from trainer.budget import Speed
from trainer.pairs import hard_negatives
from trainer.preference import Pair, Signal, Weights, prefer, reference_logps, refusal
from trainer.run import _preference_plan, run_training
from trainer.sense import SelectionTask, from_conversations
from trainer.settings import PreferenceSettings
from twin.commands.demo import sample_export
from twin.dataset.build import build_dataset, read_samples
from twin.dataset.settings import DatasetSettings
from twin.model import registry
from twin.model.lora import TwinGPT, build_model
from twin.model.settings import LoRASettings
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt


@pytest.fixture(scope="module")
def persona_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("preference") / "twin.db"
    asyncio.run(import_into(path, sample_export()))
    return path


@pytest.fixture(scope="module")
def replies(persona_db: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("samples") / "samples.jsonl"
    build_dataset(persona_db, out, DatasetSettings(), SampleMaker(PromptSettings()))
    return read_samples(out, "train")[:32]


def encoded(samples: list[dict], tiny_checkpoint: Path) -> list[Encoded]:
    return encode(samples, Tokenizer(tiny_checkpoint), Prompt(), 512)


def supervised(tiny_checkpoint: Path) -> tuple[L.Fabric, TwinGPT]:
    """The tiny model with an adapter that already says something (B not zero), as the
    supervised phase leaves it."""
    torch.manual_seed(0)
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="32-true")
    model = build_model(fabric, tiny_checkpoint, LoRASettings(dropout=0.0), 512)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.01)
    return fabric, model


def twice_over(samples: list[dict]) -> list[dict]:
    """Each reply said twice: a rejected reply that starts as the chosen one does, where
    DPO alone can win by making both less likely."""
    return [dict(s, output=f"{s['output']} {s['output']}") for s in samples]


@pytest.mark.parametrize("likelihood", [1.0, 0.0])
def test_pairs_are_learned_and_the_likelihood_term_keeps_the_chosen_reply(
    tiny_checkpoint: Path, replies: list[dict], likelihood: float
) -> None:
    chosen = encoded(replies, tiny_checkpoint)
    rejected = encoded(twice_over(replies), tiny_checkpoint)
    fabric, model = supervised(tiny_checkpoint)
    result = prefer(
        fabric,
        model,
        [Pair(c, r) for c, r in zip(chosen, rejected, strict=True)],
        [],
        Weights(beta=0.1, likelihood=likelihood),
        steps=30,
        batch=4,
        learning_rate=2e-3,
    )
    assert result.steps == 30 and result.stopped == "finished"
    assert result.losses[-1][1] < result.losses[0][1]
    assert result.accuracy is not None and result.accuracy >= 0.9
    assert result.chosen_change is not None
    if likelihood:
        assert result.chosen_change > 0  # the owner's reply more likely than before
    else:
        assert result.chosen_change < 0  # DPO alone gave it up: why the term is there


def test_signals_move_each_reply_the_way_it_was_judged(
    tiny_checkpoint: Path, replies: list[dict]
) -> None:
    good = encoded(replies[:16], tiny_checkpoint)
    bad = encoded(twice_over(replies[16:]), tiny_checkpoint)
    signals = [Signal(s, True) for s in good] + [Signal(s, False) for s in bad]
    fabric, model = supervised(tiny_checkpoint)
    before = reference_logps(model, [s.reply for s in signals], "cpu", 8)
    result = prefer(
        fabric,
        model,
        [],
        signals,
        Weights(beta=0.1, likelihood=1.0),
        steps=30,
        batch=8,
        learning_rate=2e-3,
    )
    after = reference_logps(model, [s.reply for s in signals], "cpu", 8)
    change = after - before
    assert result.steps == 30
    assert change[:16].mean() > 0 > change[16:].mean()


def test_nothing_to_learn_changes_nothing(tiny_checkpoint: Path) -> None:
    fabric, model = supervised(tiny_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items() if "lora" in k}
    result = prefer(
        fabric,
        model,
        [],
        [],
        Weights(beta=0.1, likelihood=1.0),
        steps=5,
        batch=4,
        learning_rate=1e-3,
    )
    assert (result.steps, result.stopped) == (0, "nothing to learn")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# -- hard negatives ------------------------------------------------------------------------


def test_a_hard_negative_is_his_reply_from_another_conversation() -> None:
    def sample(chat: int, start: int, instruction: str, output: str) -> dict:
        return {
            "instruction": instruction,
            "output": output,
            "chat_id": chat,
            "conversation": start,
        }

    samples = [
        sample(1, 10, "", "opens the chat: answers nothing"),
        sample(1, 10, "how are you?", "fine, and you"),
        sample(1, 10, "coming tonight?", "yes, at seven"),
        sample(2, 10, "tea or coffee?", "coffee, always"),
        sample(2, 50, "seen the film?", "fine, and you"),  # the same words as chat 1's
        sample(3, 10, "where are you?", "on the bus home"),
    ]
    chosen = hard_negatives(samples, 10)
    assert sorted(c for c, _ in chosen) == [1, 2, 3, 4, 5]  # those answering a message
    for reply, rejected in chosen:
        mine, other = samples[reply], samples[rejected]
        assert (mine["chat_id"], mine["conversation"]) != (other["chat_id"], other["conversation"])
        assert mine["output"] != other["output"]
    assert hard_negatives(samples, 10) == chosen  # fixed: a rerun learns the same pairs
    assert len(hard_negatives(samples, 2)) == 2


# -- the phase's time ------------------------------------------------------------------------


def test_the_phase_gets_room_for_its_steps_or_leaves_the_time_to_training() -> None:
    """A 10-minute budget, 100 s of it for the final evaluation; samples of 400 tokens.
    The phase takes its share where its fixed work and four steps fit in it, more (up to
    half) where they do not, and nothing, said before training starts, where even half
    is too little: it must never take training's time for no step."""

    def plan(tokens_per_s: float) -> tuple[float | None, str | None]:
        sample = Encoded(list(range(400)), 300)
        speed = Speed(train=tokens_per_s, forward=3 * tokens_per_s, selection=tokens_per_s)
        task = SelectionTask(list(range(300)), [[1, 2]] * 10)
        setup = SimpleNamespace(
            recipe=SimpleNamespace(max_minutes=10),
            plan=SimpleNamespace(speed=speed, evaluation_seconds=100.0, checks=16),
            val_samples=[sample] * 20,
            train_samples=[sample] * 100,
            tasks=[task] * 10,
        )
        data = SimpleNamespace(feedback=[])  # no feedback yet
        settings = PreferenceSettings(enabled=True, demonstrated=8, share=0.2)
        config = SimpleNamespace(preference=settings)
        return _preference_plan(config, setup, data, time.perf_counter())  # type: ignore[arg-type]

    fast, slow, hopeless = plan(20_000), plan(300), plan(100)
    assert fast[1] is None and fast[0] == pytest.approx(0.2 * 500, rel=0.01)  # its share
    assert slow[1] is None and 0.2 * 500 < slow[0] <= 0.5 * 500  # room for four steps
    assert hopeless[0] is None and hopeless[1].startswith("too little time")


# -- the gate ------------------------------------------------------------------------------


def test_the_gate_refuses_a_worse_loss_or_a_fall_in_selection_beyond_its_interval() -> None:
    """[tasks, supervised hits, preference hits] per conversation: the phase's adapter
    replaces the supervised one only while neither measure says it got worse."""
    same = from_conversations([[5, 3, 3], [5, 2, 2], [5, 4, 4]])
    fell = from_conversations([[5, 4, 0], [5, 5, 1], [5, 3, 0], [5, 4, 1]])
    noise = from_conversations([[5, 3, 2], [5, 2, 3], [5, 4, 3]])
    assert refusal(3.0, 3.05, same, 0.02) is None
    assert refusal(3.0, 3.07, same, 0.02) == "validation loss 3.0000 -> 3.0700"
    assert fell.difference_ci95 is not None and fell.difference_ci95[1] < 0
    assert refusal(3.0, 2.9, fell, 0.02) == "selection 80% -> 10%"
    assert refusal(3.0, 2.9, noise, 0.02) is None  # a fall inside the interval is noise
    one = from_conversations([[6, 3, 2]])  # one conversation: no interval, a fall refuses
    assert one.difference_ci95 is None and refusal(3.0, 3.0, one, 0.02) == "selection 50% -> 33%"
    assert refusal(3.0, 3.0, from_conversations([]), 0.02) is None  # no task: the loss decides


# -- the phase in a run ---------------------------------------------------------------------


async def decide_drafts(db: Database) -> None:
    """An edited draft and a discarded one in the persona's first personal chat."""
    (chat_id,) = await db.fetchone(
        "SELECT id FROM chats WHERE type = 'personal_chat' ORDER BY id LIMIT 1"
    )
    edited = await drafts_table.create(db, chat_id, None, "как дела?", "PROMPT", "не знаю")
    await drafts_table.claim_for_sending(db, edited, "всё хорошо, спасибо", "edit")
    await drafts_table.mark_sent(db, edited, 99)
    discarded = await drafts_table.create(db, chat_id, None, "придёшь?", "PROMPT", "ну да да")
    await drafts_table.discard(db, discarded)


def preference_config(tmp_path: Path, persona_db: Path, tiny: Path, **settings: object):
    config = config_for(tmp_path, persona_db, tiny)
    with_database(config.db_path, decide_drafts)
    update = {"enabled": True, "demonstrated": 4, "learning_rate": 2e-3, **settings}
    return replace(config, preference=config.preference.model_copy(update=update))


def test_a_run_learns_the_owners_preferences_after_the_supervised_phase(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    config = preference_config(
        tmp_path, persona_db, tiny_checkpoint, max_loss_increase=1.0, hard_negatives=2
    )
    report = run_training(config)
    phase = report.preference
    assert phase is not None
    assert phase["sources"] == {
        "demonstrated": phase["pairs"] - 3,
        "discarded": 1,
        "edited": 1,
        "hard_negative": 2,
    }
    assert phase["pairs"] >= 4 and phase["signals"] == 1  # the edit, 2 others, a guess
    assert phase["steps"] > 0 and phase["kept"] and phase["refused"] is None
    assert phase["selection_tasks"] > 0 and phase["selection_after"] is not None
    supervised = registry.load(next((tmp_path / "data" / "runs").glob("*/supervised/*")))
    saved = registry.load(Path(report.adapter_path))
    assert any(not torch.equal(saved[k], supervised[k]) for k in saved)  # the phase's
    run = with_database(config.db_path, lambda db: runs_table.latest(db))
    assert run.metrics["preference"]["steps"] == phase["steps"]


def test_a_phase_that_makes_the_loss_worse_is_not_kept(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    config = preference_config(
        tmp_path, persona_db, tiny_checkpoint, learning_rate=0.5, max_loss_increase=0.0
    )
    report = run_training(config)
    phase = report.preference
    assert phase is not None and phase["steps"] > 0
    assert phase["val_loss_after"] > phase["val_loss_before"] and not phase["kept"]
    assert phase["refused"].startswith("validation loss")
    supervised = registry.load(next((tmp_path / "data" / "runs").glob("*/supervised/*")))
    saved = registry.load(Path(report.adapter_path))
    assert all(torch.equal(saved[k], supervised[k]) for k in saved)  # the supervised one


def test_a_run_from_the_active_adapter_learns_only_the_preferences(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    """preference.start = "active": no supervised phase, the whole run learns the
    feedback on top of the active adapter; a phase that is not kept leaves that adapter
    active, and no copy of it is promoted in its place."""
    first = run_training(config_for(tmp_path, persona_db, tiny_checkpoint))
    assert first.promoted
    night = preference_config(
        tmp_path, persona_db, tiny_checkpoint, start="active", max_loss_increase=1.0
    )
    report = run_training(night)
    phase = report.preference
    assert phase is not None and phase["started_from"] == first.adapter_id
    assert report.training["steps"] == 0 and phase["steps"] > 0 and phase["kept"]
    began, saved = registry.load(Path(first.adapter_path)), registry.load(Path(report.adapter_path))
    assert any(not torch.equal(saved[k], began[k]) for k in saved)  # learned on top of it

    active = report.adapter_id if report.promoted else first.adapter_id
    worse = preference_config(
        tmp_path,
        persona_db,
        tiny_checkpoint,
        start="active",
        learning_rate=0.5,
        max_loss_increase=0.0,
    )
    refused = run_training(worse)
    assert refused.preference is not None and refused.preference["started_from"] == active
    assert not refused.preference["kept"] and not refused.promoted
    assert refused.reason == f"the preference phase was not kept: adapter {active} stays"
