"""LoRA fine-tuning: litgpt's LoRA model in a training loop of twin's own, on Fabric.

Why not litgpt's finetune script: three things it does not do make the difference on
a CPU and on small personal datasets. The output layer runs only at response tokens
(TwinGPT); batches are built from samples of similar length under a token budget
instead of padding everything to one length; and a run can stop at a time budget and
resume exactly where it was killed (LoRA weights, optimizer, RNG and step, saved
atomically every `save_interval` steps).

Multi-GPU is the same loop: Fabric's strategy (DDP, FSDP) and each rank taking its
share of every step's micro-batches.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from model.device import release_memory
from model.lora import adapter_state, load_adapter
from trainer.batches import Encoded, collate, micro_batches
from trainer.loss import batch_loss, mean_loss
from trainer.settings import TrainSettings

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
    stopped: str  # finished, time_budget
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
            "train_losses": self.train_losses,
            "val_losses": self.val_losses,
        }


def plan_steps(samples: list[Encoded], settings: TrainSettings) -> list[list[list[int]]]:
    """Every optimizer step of the run: its micro-batches, each a list of sample indexes.

    Fixed by the seed, so a resumed run replays the same order."""
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


def learning_rate(step: int, total: int, settings: TrainSettings) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio of the peak."""
    peak = settings.learning_rate
    if step < settings.warmup_steps:
        return peak * (step + 1) / settings.warmup_steps
    span = max(1, total - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    floor = peak * settings.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    fabric: L.Fabric,
    model: torch.nn.Module,
    train_samples: list[Encoded],
    val_samples: list[Encoded],
    settings: TrainSettings,
    run_dir: Path,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train the LoRA weights of `model` (built by model.lora.build_model)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_steps(train_samples, settings)
    if not plan:
        raise ValueError("no training samples")
    raw_model = model
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay, betas=(0.9, 0.95)
    )
    model, optimizer = fabric.setup(model, optimizer)
    result = TrainResult(
        adapter={}, steps=0, total_steps=len(plan), tokens=0, seconds=0.0, stopped=""
    )
    if resume:
        _restore(run_dir / STATE_FILE, raw_model, optimizer, result, len(plan))
    else:
        torch.manual_seed(settings.seed)
    share = slice(fabric.global_rank, None, fabric.world_size)
    started = time.perf_counter() - result.seconds
    model.train()
    for step in range(result.steps, len(plan)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, len(plan), settings)
        groups = plan[step]
        step_targets = sum(train_samples[i].targets for g in groups for i in g)
        mine = groups[share]
        step_loss = 0.0
        for position, group in enumerate(mine):
            batch = collate([train_samples[i] for i in group]).to(fabric.device)
            last = position == len(mine) - 1
            with fabric.no_backward_sync(model, enabled=not last):
                loss, _ = batch_loss(model, batch)
                # Summed over tokens, divided by the step's tokens: every response token
                # weighs the same whatever micro-batch it fell in. Ranks average
                # gradients, so each rank's share is scaled back up.
                fabric.backward(loss * fabric.world_size / step_targets)
            step_loss += loss.item()
            result.tokens += batch.tokens
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        release_memory()
        result.steps = step + 1
        result.seconds = time.perf_counter() - started
        result.train_losses.append((result.steps, step_loss / step_targets))
        val = None
        if result.steps % settings.eval_interval == 0 and result.steps < len(plan):
            val = mean_loss(model, val_samples, settings.micro_batch_tokens, fabric.device)
            result.val_losses.append((result.steps, val))
        if on_progress is not None:
            on_progress(
                Progress(
                    result.steps,
                    len(plan),
                    step_loss / step_targets,
                    result.tokens / max(result.seconds, 1e-9),
                    result.seconds,
                    val,
                )
            )
        out_of_time = (
            settings.max_minutes is not None
            and result.seconds + (result.seconds / result.steps) > settings.max_minutes * 60
        )
        if result.steps % settings.save_interval == 0 or out_of_time:
            _save(fabric, run_dir / STATE_FILE, raw_model, optimizer, result)
        if out_of_time:
            result.stopped = "time_budget"
            break
    else:
        result.stopped = "finished"
    if val_samples:
        result.val_losses.append(
            (
                result.steps,
                mean_loss(model, val_samples, settings.micro_batch_tokens, fabric.device),
            )
        )
    _save(fabric, run_dir / STATE_FILE, raw_model, optimizer, result)
    result.adapter = adapter_state(raw_model)
    return result


def _save(
    fabric: L.Fabric,
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
) -> None:
    """LoRA weights, optimizer, RNG and progress; written whole or not at all."""
    if fabric.global_rank != 0:
        return
    state = {
        "adapter": adapter_state(model),
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
        "steps": result.steps,
        "total_steps": result.total_steps,
        "tokens": result.tokens,
        "seconds": result.seconds,
        "train_losses": result.train_losses,
        "val_losses": result.val_losses,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _restore(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
    total_steps: int,
) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: no {path}")
    state = torch.load(path, weights_only=True)  # tensors and numbers: no code runs
    if state["total_steps"] != total_steps:
        raise ValueError(
            "cannot resume: the samples or the settings changed since the run started "
            f"({state['total_steps']} steps then, {total_steps} now)"
        )
    load_adapter(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    result.steps = state["steps"]
    result.tokens = state["tokens"]
    result.seconds = state["seconds"]
    result.train_losses = [tuple(x) for x in state["train_losses"]]
    result.val_losses = [tuple(x) for x in state["val_losses"]]
