"""LoRA fine-tuning, evaluation and the adapter registry, on the tiny model."""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from litgpt import Tokenizer

from storage import Database, with_database
from storage import runs as runs_table
from storage.adapters import active as active_adapter
from storage.adapters import all_adapters
from storage.runs import RunLockedError
from tests.exports import import_into
from trainer.batches import collate, encode, micro_batches
from trainer.budget import Speed
from trainer.finetune import Progress, TrainResult, plan_steps, train
from trainer.loss import batch_loss, mean_loss
from trainer.run import RunConfig, TrainingError, run_training
from trainer.settings import PreferenceSettings, TrainSettings
from twin.cli import main
from twin.commands.demo import sample_export
from twin.dataset.build import read_samples
from twin.dataset.settings import DatasetSettings
from twin.memory.settings import MemorySettings
from twin.model import registry
from twin.model.checkpoints import read_config
from twin.model.lora import build_model, frozen_linear, load_adapter
from twin.model.settings import LoRASettings, ModelSettings
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt

FAST = TrainSettings(
    batch_size=8,
    micro_batch_tokens=1024,
    epochs=1,
    max_steps=6,
    learning_rate=2e-3,
    warmup_steps=1,
    eval_interval=3,
)


@pytest.fixture(scope="module")
def persona_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    path = tmp_path_factory.mktemp("db") / "twin.db"
    asyncio.run(import_into(path, sample_export()))
    return path


def config_for(tmp_path: Path, persona_db: Path, tiny: Path, **train: object) -> RunConfig:
    db = tmp_path / "twin.db"
    if not db.exists():
        db.write_bytes(persona_db.read_bytes())
    return RunConfig(
        data_dir=tmp_path / "data",
        db_path=db,
        models_dir=tmp_path / "data" / "models",
        model=ModelSettings(checkpoint=str(tiny), precision="32-true"),
        lora=LoRASettings(),
        train=FAST.model_copy(update=train),
        preference=PreferenceSettings(),
        dataset=DatasetSettings(val_fraction=0.1),
        prompt=PromptSettings(),
        memory=MemorySettings(),
    )


@pytest.fixture
def encoded(tiny_checkpoint: Path, persona_db: Path, tmp_path: Path):
    from twin.dataset.build import build_dataset

    out = tmp_path / "samples.jsonl"
    build_dataset(persona_db, out, DatasetSettings(val_fraction=0.1), SampleMaker(PromptSettings()))
    tokenizer = Tokenizer(tiny_checkpoint)
    return (
        encode(read_samples(out, "train"), tokenizer, Prompt(), 512),
        encode(read_samples(out, "val"), tokenizer, Prompt(), 512),
    )


def fabric32() -> L.Fabric:
    return L.Fabric(accelerator="cpu", devices=1, precision="32-true")


def test_response_only_loss_equals_masked_cross_entropy(tiny_checkpoint: Path, encoded) -> None:
    train_samples, _ = encoded
    fabric = fabric32()
    model = build_model(fabric, tiny_checkpoint, LoRASettings(dropout=0.0), 512)
    model.eval()
    batch = collate(train_samples[:6])
    loss_sum, count = batch_loss(model, batch)
    logits = model(batch.idx)  # litgpt's full forward: every position
    # The usual way: labels are the ids with the prompt and the padding masked, shifted.
    labels = torch.full_like(batch.idx, -100)
    for row, sample in enumerate(train_samples[:6]):
        labels[row, sample.prompt_length : len(sample.ids)] = torch.tensor(
            sample.ids[sample.prompt_length :]
        )
    full = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), reduction="sum"
    )
    assert count == (labels != -100).sum().item()
    torch.testing.assert_close(loss_sum, full, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("targets", [["query", "value", "mlp"], ["query", "head"]])
def test_chunked_loss_gives_the_gradient_of_the_full_cross_entropy(
    tiny_checkpoint: Path, encoded, targets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused loss (frozen head) and the chunked one (a head with LoRA) give the
    gradient litgpt's full forward and a masked cross-entropy give, chunk edges
    included."""
    import trainer.loss
    from twin.model import embedding

    # many chunks, a ragged last one: rows of a trainable head, the vocabulary of a frozen one
    monkeypatch.setattr(trainer.loss, "HEAD_ROWS", 7)
    monkeypatch.setattr(embedding, "VOCAB_ROWS", 37)
    train_samples, _ = encoded
    torch.manual_seed(0)  # the same LoRA weights whatever tests ran before
    model = build_model(
        fabric32(), tiny_checkpoint, LoRASettings(dropout=0.0, targets=targets), 512
    )
    seeded = torch.Generator().manual_seed(0)
    with torch.no_grad():  # B = 0 would leave A without a gradient
        for name, param in model.named_parameters():
            if name.endswith("lora_B"):
                param.normal_(0, 0.02, generator=seeded)
    batch = collate(train_samples[:5])
    fused_path = frozen_linear(model.lm_head) is not None
    assert fused_path == ("head" not in targets)

    def gradients(loss: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    fused = gradients(batch_loss(model, batch)[0])
    logits = model(batch.idx)
    rows = logits[:, :-1][batch.head_positions[:, :-1]]
    reference = gradients(F.cross_entropy(rows, batch.targets, reduction="sum"))
    assert fused.keys() == reference.keys() and fused
    for name in fused:
        torch.testing.assert_close(fused[name], reference[name], rtol=1e-3, atol=1e-4)


def test_an_embedding_kept_in_bf16_gives_what_its_float32_widening_gives(
    tiny_checkpoint: Path, encoded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training stores the tied embedding and output layer in bf16 (as the checkpoint
    does) while computing in float32: the loss, the gradients, selection's logits and the
    cached forward equal a float32 model holding the same bf16-rounded values, and the
    matrix takes half the bytes."""
    from trainer.sense import reply_logprobs
    from twin.model import embedding
    from twin.model.embedding import NarrowHead, narrow_tied_embedding

    monkeypatch.setattr(embedding, "VOCAB_ROWS", 37)
    train_samples, _ = encoded
    batch = collate(train_samples[:5])

    def built() -> torch.nn.Module:
        torch.manual_seed(3)
        tiny = build_model(fabric32(), tiny_checkpoint, LoRASettings(dropout=0.0), 512)
        with torch.no_grad():
            for name, param in tiny.named_parameters():
                if name.endswith("lora_B"):
                    param.normal_(0, 0.02)
        return tiny

    wide, narrow = built(), built()
    with torch.no_grad():  # the values a bf16 checkpoint holds
        wide.transformer.wte.weight.copy_(wide.transformer.wte.weight.bfloat16().float())
    assert narrow_tied_embedding(narrow, torch.bfloat16)
    assert narrow.transformer.wte.weight.dtype == torch.bfloat16
    assert narrow.lm_head.weight is narrow.transformer.wte.weight
    assert isinstance(narrow.lm_head, NarrowHead) and frozen_linear(narrow.lm_head) is not None
    assert not narrow_tied_embedding(narrow, torch.bfloat16)  # already narrow

    def loss_and_gradients(tiny: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tiny.zero_grad(set_to_none=True)
        loss, _ = batch_loss(tiny, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in tiny.named_parameters() if p.requires_grad}
        return loss.detach(), grads

    (wide_loss, wide_grads), (narrow_loss, narrow_grads) = map(loss_and_gradients, (wide, narrow))
    torch.testing.assert_close(narrow_loss, wide_loss, rtol=1e-5, atol=1e-4)
    assert narrow_grads.keys() == wide_grads.keys() and narrow_grads
    for name in wide_grads:
        torch.testing.assert_close(narrow_grads[name], wide_grads[name], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        rows = (slice(None), slice(-3, None))
        torch.testing.assert_close(
            narrow(batch.idx, head_positions=rows), wide(batch.idx, head_positions=rows)
        )
        for tiny in (wide, narrow):
            tiny.set_kv_cache(batch_size=1)
        prompt = batch.idx[:1, :9]
        positions = torch.arange(9)
        torch.testing.assert_close(narrow(prompt, positions), wide(prompt, positions))
        # selection's scores: its KV cache in the dtype the model computes in
        replies = [batch.idx[0, 9:15].tolist(), batch.idx[1, 3:7].tolist()]
        prefix = batch.idx[0, :9].tolist()
        torch.testing.assert_close(
            reply_logprobs(narrow, prefix, replies, "cpu"),
            reply_logprobs(wide, prefix, replies, "cpu"),
            rtol=1e-5,
            atol=1e-5,
        )


def test_a_trainable_or_untied_output_layer_keeps_its_dtype(tiny_checkpoint: Path) -> None:
    from twin.model.embedding import narrow_tied_embedding

    with_head = build_model(fabric32(), tiny_checkpoint, LoRASettings(targets=["head"]), 512)
    assert not narrow_tied_embedding(with_head, torch.bfloat16)
    untied = build_model(fabric32(), tiny_checkpoint, LoRASettings(), 512)
    untied.lm_head.linear.weight = torch.nn.Parameter(
        untied.lm_head.linear.weight.detach().clone(), requires_grad=False
    )
    assert not narrow_tied_embedding(untied, torch.bfloat16)
    assert untied.transformer.wte.weight.dtype == torch.float32


def test_recomputed_blocks_give_the_same_gradient_and_keep_far_less(
    tiny_checkpoint: Path, encoded
) -> None:
    """A sample longer than a micro-batch is trained with its blocks recomputed: the
    same loss and gradients, a fraction of the tensors kept for the backward pass, and
    the model as it was afterwards."""
    model = build_model(fabric32(), tiny_checkpoint, LoRASettings(dropout=0.0), 512)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_B"):
                param.normal_(0, 0.02)
    batch = collate(encoded[0][:4])
    blocks = model.transformer.h

    def run(recompute: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        kept = 0

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal kept
            kept += tensor.numel() * tensor.element_size()
            return tensor

        model.zero_grad(set_to_none=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss, _ = batch_loss(model, batch, recompute=recompute)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return loss.detach(), grads, kept

    loss, grads, kept = run(recompute=False)
    again, regrads, rekept = run(recompute=True)
    torch.testing.assert_close(again, loss)
    for name in grads:
        torch.testing.assert_close(regrads[name], grads[name], rtol=1e-4, atol=1e-6)
    assert rekept < kept / 3, (rekept, kept)
    assert model.transformer.h is blocks


def test_the_loss_runs_on_a_bf16_model_behind_fabric(tiny_checkpoint: Path, encoded) -> None:
    """Fabric hands a bf16-true model's outputs back in float32; the head must still
    get its own dtype (this broke training on GPUs and bf16 CPUs once)."""
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="bf16-true")
    model = build_model(fabric, tiny_checkpoint, LoRASettings(), 512)
    wrapped = fabric.setup(model)
    loss, count = batch_loss(wrapped, collate(encoded[0][:2]))
    loss.backward()
    assert torch.isfinite(loss) and count > 0
    assert all(p.grad is not None for n, p in model.named_parameters() if n.endswith("lora_A"))


def test_batches_stay_within_the_token_budget_and_group_lengths(encoded) -> None:
    train_samples, _ = encoded
    groups = micro_batches(train_samples, 600)
    assert sorted(i for g in groups for i in g) == list(range(len(train_samples)))
    for group in groups:
        lengths = [len(train_samples[i].ids) for i in group]
        assert len(group) == 1 or max(lengths) * len(group) <= 600
    # Steps of at least batch_size samples (the last of an epoch takes what is left),
    # every sample once per epoch.
    steps = plan_steps(
        train_samples, TrainSettings(batch_size=32, epochs=1, micro_batch_tokens=600)
    )
    assert all(sum(len(g) for g in step) >= 32 for step in steps[:-1])
    assert sorted(i for step in steps for g in step for i in g) == list(range(len(train_samples)))


def test_loss_goes_down_and_only_lora_weights_train(
    tiny_checkpoint: Path, encoded, tmp_path: Path
) -> None:
    train_samples, val_samples = encoded
    subset = train_samples[:24]
    fabric = fabric32()
    model = build_model(fabric, tiny_checkpoint, LoRASettings(), 512)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    before = mean_loss(model, subset, 1024, "cpu")
    settings = FAST.model_copy(update={"epochs": 4, "max_steps": None, "learning_rate": 1e-2})
    result = train(fabric, model, subset, val_samples[:8], settings, tmp_path)
    assert result.steps == result.total_steps >= 8
    assert mean_loss(model, subset, 1024, "cpu") < 0.9 * before
    assert set(result.adapter) == {n for n, _ in model.named_parameters() if "lora_" in n}
    for name, param in model.named_parameters():
        if "lora_" not in name:
            assert torch.equal(param, frozen[name]), name


def test_the_recipe_follows_the_number_of_samples_and_the_machine() -> None:
    from trainer.recipe import resolve

    few = resolve(TrainSettings(), 243, "cpu")  # a few hundred replies
    assert (few.batch_size, few.epochs, few.max_minutes) == (8, 8, 15.0)
    some = resolve(TrainSettings(), 600, "cpu")
    assert (some.batch_size, some.epochs) == (16, 4)
    many = resolve(TrainSettings(), 51_000, "cuda")  # the seed's dataset, on a GPU
    assert (many.batch_size, many.epochs, many.max_minutes) == (128, 2, None)
    chosen = resolve(TrainSettings(batch_size=32, epochs=1, max_minutes=5), 243, "cpu")
    assert (chosen.batch_size, chosen.epochs, chosen.max_minutes) == (32, 1, 5)


def test_the_schedule_is_cut_to_the_steps_that_fit_the_budget() -> None:
    from trainer.finetune import Reserve, Schedule, fit_to_budget

    settings = TrainSettings(max_minutes=1.0, learning_rate=1.0, min_lr_ratio=0.1)
    planned = Schedule(steps=40, warmup=4, eval_every=5)
    nothing = Reserve()
    # Three steps of 1,000 tokens took 30 s: 100 tokens/s, 30 s left, so three more.
    fitted = fit_to_budget(planned, [1000] * 40, 3, 30.0, 100.0, nothing, settings)
    assert (fitted.steps, fitted.fixed, fitted.eval_every) == (6, True, 1)
    # The checks take their share: 8 of 300 tokens each, scored at 240 tokens/s (10 s);
    # unmeasured, at a third of a training step's cost (8 s).
    checks = Reserve(check_tokens=300, forward=240.0)
    assert fit_to_budget(planned, [1000] * 40, 3, 30.0, 100.0, checks, settings).steps == 5
    unmeasured = Reserve(check_tokens=300)
    assert fit_to_budget(planned, [1000] * 40, 3, 30.0, 100.0, unmeasured, settings).steps == 5
    # So does the final evaluation: 20 s of the 30 left.
    evaluation = Reserve(evaluation=20.0)
    assert fit_to_budget(planned, [1000] * 40, 3, 30.0, 100.0, evaluation, settings).steps == 4
    assert fitted.learning_rate(fitted.steps - 1, settings) == pytest.approx(0.1)  # decayed
    # A budget that fits every planned step keeps the plan.
    roomy = settings.model_copy(update={"max_minutes": 60.0})
    assert fit_to_budget(planned, [1000] * 40, 3, 30.0, 100.0, nothing, roomy).steps == 40
    # Out of time: one more step, but never past the plan (a plan of three, all taken).
    assert fit_to_budget(planned, [1000] * 40, 3, 90.0, 100.0, nothing, settings).steps == 4
    assert fit_to_budget(planned, [1000] * 3, 3, 30.0, 100.0, nothing, settings).steps == 3
    # A refit may lengthen an earlier guess: the plan, not the guess, is the limit.
    guessed = Schedule(steps=5, warmup=1, eval_every=1)
    assert fit_to_budget(guessed, [1000] * 40, 3, 3.0, 1000.0, nothing, settings).steps == 40


def test_a_run_that_slows_down_still_ends_its_schedule_within_the_budget(
    tiny_checkpoint: Path, encoded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check fits the length again at the pace since the last one: a run whose
    steps take three times as long after the first ten micro-batches (a CPU that slows)
    ends with its schedule finished and the learning rate decayed, not cut by the
    clock. The clock is simulated: a micro-batch takes 1 s, later 3 s; a check 0.5 s."""
    import types

    import trainer.finetune

    clock = [0.0]
    calls = [0]
    monkeypatch.setattr(
        trainer.finetune, "time", types.SimpleNamespace(perf_counter=lambda: clock[0])
    )
    real_loss = trainer.finetune.batch_loss

    def timed_loss(*args, **kwargs):
        calls[0] += 1
        clock[0] += 1.0 if calls[0] <= 10 else 3.0
        return real_loss(*args, **kwargs)

    def timed_check(*args) -> float:
        clock[0] += 0.5
        return 1.0 / clock[0]  # better at every check

    monkeypatch.setattr(trainer.finetune, "batch_loss", timed_loss)
    monkeypatch.setattr(trainer.finetune, "validation_loss", timed_check)
    settings = FAST.model_copy(
        update={
            "max_minutes": 1.0,
            "max_steps": 60,
            "epochs": 20,
            "batch_size": 1,
            "eval_interval": None,  # the budget spaces the checks
        }
    )
    result, totals = _budgeted_run(tiny_checkpoint, encoded, tmp_path, settings)
    assert result.stopped == "finished" and result.steps == totals[-1] < totals[3]
    assert clock[0] <= 60.0
    # Evenly spaced checks (the last one is where the run ended).
    checked = [step for step, _ in result.val_losses[:-1]]
    assert len({b - a for a, b in zip([0, *checked[:-1]], checked, strict=True)}) == 1


def test_the_first_steps_already_show_the_budgets_length(
    tiny_checkpoint: Path, encoded, tmp_path: Path
) -> None:
    """The planning pass's speed sets the length from the first step (it said 'step
    1/135, about 33 min left' in a 15-minute run); the timed steps then refit it."""
    from trainer.finetune import MEASURED_STEPS

    settings = FAST.model_copy(update={"max_minutes": 1.0, "max_steps": 12, "epochs": 3})
    planned = len(plan_steps(encoded[0], settings))
    slow = Speed(train=1.0, forward=1.0, selection=1.0)  # a step would take minutes
    _, totals = _budgeted_run(tiny_checkpoint, encoded, tmp_path, settings, slow)
    assert planned > MEASURED_STEPS and totals[0] == MEASURED_STEPS


def _budgeted_run(
    checkpoint: Path,
    encoded,
    run_dir: Path,
    settings: TrainSettings,
    speed: Speed | None = None,
) -> tuple[TrainResult, list[int]]:
    """A run of the tiny model on a few checks' samples, and the length each step showed."""
    train_samples, val_samples = encoded
    fabric = fabric32()
    model = build_model(fabric, checkpoint, LoRASettings(), 512)
    totals: list[int] = []
    result = train(
        fabric,
        model,
        train_samples,
        val_samples[:4],
        settings,
        run_dir,
        on_progress=lambda p: totals.append(p.total_steps),
        speed=speed,
    )
    return result, totals


def test_training_leaves_the_final_evaluation_its_time(
    tiny_checkpoint: Path, encoded, tmp_path: Path
) -> None:
    """An evaluation planned to take the whole budget leaves training one step, whatever
    the machine's speed: the run as a whole ends within max_minutes."""
    train_samples, val_samples = encoded
    fabric = fabric32()
    model = build_model(fabric, tiny_checkpoint, LoRASettings(), 512)
    settings = FAST.model_copy(update={"max_minutes": 1.0})
    result = train(
        fabric, model, train_samples, val_samples[:4], settings, tmp_path, evaluation=60.0
    )
    assert (result.steps, result.stopped) == (1, "time_budget")


def test_what_a_run_spends_before_training_comes_out_of_trainings_budget(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dataset, the memory and the plan take seconds of the run's budget: training
    leaves them out, as it leaves the final evaluation's. The clock is simulated: every
    reading of it is 100 s after the one before."""
    import types

    import trainer.run

    ticks = iter(range(0, 10**9, 100))
    clock = types.SimpleNamespace(
        perf_counter=lambda: next(ticks), monotonic=time.monotonic, sleep=time.sleep, time=time.time
    )
    monkeypatch.setattr(trainer.run, "time", clock)
    reserved: list[float] = []

    def spy(*args, evaluation: float = 0.0, **kwargs):
        reserved.append(evaluation)
        return train(*args, evaluation=evaluation, **kwargs)

    monkeypatch.setattr(trainer.run, "train", spy)
    run_training(config_for(tmp_path, persona_db, tiny_checkpoint, max_steps=1))
    assert reserved and reserved[0] >= 100


def test_training_keeps_the_best_adapter_and_stops_when_validation_gets_worse(
    tiny_checkpoint: Path, encoded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.finetune
    from twin.model.lora import adapter_state

    train_samples, val_samples = encoded
    scripted = iter([3.0, 2.0, 2.5, 2.6, 1.0])  # best at step 2, then two worse ones
    monkeypatch.setattr(trainer.finetune, "validation_loss", lambda *_: next(scripted))
    fabric = fabric32()
    model = build_model(fabric, tiny_checkpoint, LoRASettings(), 512)
    seen: dict[int, dict[str, torch.Tensor]] = {}
    settings = FAST.model_copy(
        update={"max_steps": 10, "epochs": 4, "eval_interval": 1, "patience": 2}
    )
    result = train(
        fabric,
        model,
        train_samples[:80],
        val_samples[:4],
        settings,
        tmp_path,
        on_progress=lambda p: seen.setdefault(p.step, adapter_state(model)),
    )
    assert result.stopped == "early_stop" and result.steps == 4
    assert result.val_losses == [(1, 3.0), (2, 2.0), (3, 2.5), (4, 2.6)]
    assert result.best_step == 2
    # The adapter returned, and left in the model, is step 2's, not the last one.
    for name, value in seen[2].items():
        assert torch.equal(result.adapter[name], value)
        assert torch.equal(dict(model.named_parameters())[name].detach(), value)
    assert any(not torch.equal(seen[4][n], v) for n, v in seen[2].items())


def test_resume_after_a_kill_continues_where_it_stopped(
    tiny_checkpoint: Path, encoded, tmp_path: Path
) -> None:
    train_samples, val_samples = encoded
    settings = FAST.model_copy(update={"eval_interval": 2})

    def fresh() -> tuple[L.Fabric, torch.nn.Module]:
        fabric = fabric32()
        fabric.seed_everything(7, verbose=False)  # the same LoRA initialisation each time
        return fabric, build_model(fabric, tiny_checkpoint, LoRASettings(), 512)

    fabric, model = fresh()
    straight = train(fabric, model, train_samples, val_samples, settings, tmp_path / "a")

    def kill_at_five(progress: Progress) -> None:
        if progress.step == 5:
            raise KeyboardInterrupt  # after step 5, whose state was never saved

    fabric, model = fresh()
    with pytest.raises(KeyboardInterrupt):
        train(
            fabric,
            model,
            train_samples,
            val_samples,
            settings,
            tmp_path / "b",
            on_progress=kill_at_five,
        )
    saved = torch.load(tmp_path / "b" / "state.pt", weights_only=False)
    assert saved["steps"] == 4

    steps_seen: list[int] = []
    fabric, model = fresh()
    resumed = train(
        fabric,
        model,
        train_samples,
        val_samples,
        settings,
        tmp_path / "b",
        resume=True,
        on_progress=lambda p: steps_seen.append(p.step),
    )
    assert steps_seen == [5, 6]
    assert resumed.train_losses[:4] == straight.train_losses[:4]
    for name, value in straight.adapter.items():
        torch.testing.assert_close(resumed.adapter[name], value, rtol=1e-5, atol=1e-6)


def test_training_run_promotes_then_rejects_a_worse_candidate(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    config = config_for(tmp_path, persona_db, tiny_checkpoint)
    first = run_training(config)
    assert first.promoted and first.adapter_loss < first.base_loss
    assert first.reference == "the base model"
    # One step at a negligible learning rate: about the base model, worse than the active.
    worse = run_training(
        config_for(tmp_path, persona_db, tiny_checkpoint, learning_rate=1e-9, max_steps=1)
    )
    assert not worse.promoted
    assert worse.reference == f"adapter {first.adapter_id}"
    assert worse.reference_loss == pytest.approx(first.adapter_loss, rel=1e-4)  # recomputed
    adapters = with_database(config.db_path, all_adapters)
    assert [(a.id, a.status) for a in adapters] == [
        (first.adapter_id, "active"),
        (worse.adapter_id, "rejected"),
    ]
    assert "worse" in adapters[1].reason
    runs = with_database(config.db_path, lambda db: runs_table.latest(db))
    assert runs.status == "finished" and runs.metrics["promoted"] is False


def test_other_peoples_turns_are_trained_on_but_never_measured(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    config = config_for(tmp_path, persona_db, tiny_checkpoint, max_steps=1)
    config = replace(config, dataset=DatasetSettings(val_fraction=0.1, other_turns=True))
    report = run_training(config)
    dataset = registry.read_meta(Path(report.adapter_path))["dataset"]
    splits = Counter(sample["split"] for sample in read_samples(Path(dataset)))
    assert splits["other"] > 0
    assert report.samples == {"train": splits["train"] + splits["other"], "val": splits["val"]}


def test_a_second_run_is_refused_while_one_runs(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    config = config_for(tmp_path, persona_db, tiny_checkpoint)
    held = with_database(
        config.db_path, lambda db: runs_table.start(db, "bot", os.getpid(), socket.gethostname())
    )
    with pytest.raises(RunLockedError, match=f"training run {held} is already running"):
        run_training(config)
    # A dead PID with a fresh heartbeat still holds it: the heartbeat's age decides.
    with_database(config.db_path, lambda db: runs_table.update(db, held, pid=2**22 + 12345))
    with pytest.raises(RunLockedError):
        run_training(config)
    # A live PID (here: this very process, as after PID reuse) whose heartbeat stopped a
    # while ago holds nothing: the lock is cleared and the new run goes ahead.
    with_database(config.db_path, lambda db: runs_table.update(db, held, pid=os.getpid()))
    with_database(config.db_path, lambda db: stop_heartbeat(db, held))
    report = run_training(config)
    previous = with_database(config.db_path, lambda db: runs_table.get(db, held))
    assert previous.status == "interrupted" and report.run_id != held


async def stop_heartbeat(db: Database, run_id: int) -> None:
    async with db.transaction():
        await db.execute(
            "UPDATE training_runs SET heartbeat = ? WHERE id = ?",
            (int(time.time() - runs_table.STALE_SECONDS - 1), run_id),
        )


def test_no_half_adapter_is_ever_registered(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, persona_db, tiny_checkpoint)
    real_save = torch.save

    def crash_mid_save(obj: object, path: object, *args: object, **kwargs: object) -> None:
        if str(path).endswith(registry.WEIGHTS):
            Path(str(path)).write_bytes(b"half")
            raise OSError("disk full")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", crash_mid_save)
    with pytest.raises(OSError, match="disk full"):
        run_training(config)
    assert with_database(config.db_path, all_adapters) == []
    assert not any(config.adapters_dir.iterdir())  # not even a temporary folder
    run = with_database(config.db_path, lambda db: runs_table.latest(db))
    assert run.status == "failed" and "disk full" in run.error


def test_resume_of_a_killed_run_through_the_run_job(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    # saved at 2; no time budget, so that a slow machine cannot end the run early
    config = config_for(tmp_path, persona_db, tiny_checkpoint, eval_interval=2, max_minutes=0)

    def kill(progress: Progress) -> None:
        if progress.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(config, on_progress=kill)
    killed = with_database(config.db_path, lambda db: runs_table.latest(db))
    assert killed.status == "interrupted"
    report = run_training(config, resume=True)
    assert report.run_id == killed.id and report.training["steps"] == FAST.max_steps
    with pytest.raises(TrainingError, match="nothing to resume"):
        run_training(config, resume=True)


def test_adapter_weights_reload_exactly(
    tiny_checkpoint: Path, persona_db: Path, tmp_path: Path
) -> None:
    config = config_for(tmp_path, persona_db, tiny_checkpoint)
    report = run_training(config)
    active = with_database(config.db_path, active_adapter)
    assert active.id == report.adapter_id
    meta = registry.read_meta(Path(active.path))
    assert meta["base_model"] == read_config(tiny_checkpoint).name
    assert meta["lora"]["r"] == 16 and meta["lora"]["alpha"] == 32
    state = registry.load(Path(active.path))
    assert all("lora_" in name for name in state)
    # A fresh model with the saved LoRA weights gives the trained model's logits.
    fabric = fabric32()
    model = build_model(fabric, tiny_checkpoint, LoRASettings(dropout=0.0), 512)
    idx = torch.tensor([[2, 10, 20, 30, 40]])
    model.eval()
    load_adapter(model, None)
    base = model(idx)
    load_adapter(model, state)
    tuned = model(idx)
    assert not torch.allclose(base, tuned)
    again = build_model(fabric, tiny_checkpoint, LoRASettings(dropout=0.0), 512)
    again.eval()
    load_adapter(again, state)
    torch.testing.assert_close(again(idx), tuned)


def test_twin_eval_reports_the_loss_the_run_measured(
    tiny_checkpoint: Path,
    persona_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from twin.commands import common

    config = config_for(tmp_path, persona_db, tiny_checkpoint)
    report = run_training(config)
    toml = tmp_path / "twin.toml"
    toml.write_text(
        f'data_dir = "{config.data_dir}"\n'
        f'[storage]\npath = "{config.db_path}"\n'
        f'[model]\ncheckpoint = "{tiny_checkpoint}"\nprecision = "32-true"\n'
    )
    recorded: dict[str, list[tuple[str, int]]] = {}

    class Recording(common._LineMeter):
        def expect(self, amount: int) -> None:
            recorded.setdefault(self.what, []).append(("expect", amount))
            super().expect(amount)

        def __call__(self, amount: int) -> None:
            recorded.setdefault(self.what, []).append(("done", amount))
            super().__call__(amount)

    monkeypatch.setattr(common, "_LineMeter", Recording)
    assert main(["eval", "--config", str(toml), "--json", "--generate", "2"]) == 0
    shown = capsys.readouterr()
    measured = json.loads(shown.out)
    # Progress where no terminal draws a bar: a line at each quarter of each stretch.
    assert "twin: evaluate: " in shown.err and "twin: generate: 4 of 4 replies" in shown.err
    # Each stretch is announced whole before it starts, so that its bar knows its end.
    for events in recorded.values():
        kinds = [kind for kind, _ in events]
        assert kinds == sorted(kinds, key=lambda kind: kind != "expect")
        expected = sum(n for kind, n in events if kind == "expect")
        assert expected == sum(n for kind, n in events if kind == "done") > 0
    assert measured["adapter"] == report.adapter_id
    assert measured["adapter_loss"] == pytest.approx(report.adapter_loss, rel=1e-4)
    assert measured["base_loss"] == pytest.approx(report.base_loss, rel=1e-4)
    assert measured["style"]["samples"] == 2
    assert main(["eval", "--config", str(toml), "--adapter", "99"]) == 1
    assert "adapter 99" in capsys.readouterr().err
