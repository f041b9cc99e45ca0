"""The preference phase's losses: what the owner preferred, made more likely than what
he did not, relative to the supervised adapter.

Pairs (a prompt, the reply he chose, the one he rejected) take DPO's loss with a
likelihood term on the chosen reply: DPO alone, on pairs that differ in a word or two
(a draft and a light edit of it), lowers the likelihood of both replies and only the
rejected one faster; the term (as in RPO and DPO-Positive) keeps the chosen reply at
least as likely as it was. Single signals (Send: this was right; Discard: this was
wrong) take KTO's loss, which needs no partner. The reference is the supervised adapter
itself, frozen: its log-probabilities are computed once, before the first step, so no
second copy of the model is held.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import lightning as L
import torch
import torch.nn.functional as F

from trainer.batches import Encoded, collate
from trainer.loss import token_losses
from trainer.sense import SelectionReport


@dataclass(frozen=True)
class Pair:
    chosen: Encoded  # the prompt and the reply he preferred
    rejected: Encoded  # the same prompt and the reply he did not


@dataclass(frozen=True)
class Signal:
    reply: Encoded  # a prompt and a reply he judged
    desirable: bool


@dataclass(frozen=True)
class Weights:
    """The loss's few knobs (trainer.settings.PreferenceSettings holds their defaults)."""

    beta: float  # how far from the reference a preference may pull
    likelihood: float  # the chosen reply's loss per token, added to DPO's
    desirable: float = 1.0  # KTO's weights of the two kinds of signal
    undesirable: float = 1.0


def sequence_logps(
    model: torch.nn.Module, samples: Sequence[Encoded], device: torch.device | str
) -> torch.Tensor:
    """Each sample's summed log-probability of its response tokens, in one batch
    (differentiable: the LoRA weights get its gradient)."""
    batch = collate(list(samples)).to(device)
    hidden = model(batch.idx, head_positions=batch.head_positions, return_hidden=True)
    losses = token_losses(model.lm_head, hidden, batch.targets)
    return -torch.stack([part.sum() for part in losses.split([s.targets for s in samples])])


def pair_loss(
    policy: tuple[torch.Tensor, torch.Tensor],
    reference: tuple[torch.Tensor, torch.Tensor],
    chosen_tokens: torch.Tensor,
    weights: Weights,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO with the likelihood term, averaged over the pairs; and each pair's margin
    (how much more the policy than the reference prefers the chosen reply: > 0 is
    learned)."""
    (chosen, rejected), (ref_chosen, ref_rejected) = policy, reference
    margin = (chosen - ref_chosen) - (rejected - ref_rejected)
    dpo = -F.logsigmoid(weights.beta * margin)
    return (dpo - weights.likelihood * chosen / chosen_tokens).mean(), margin.detach()


def signal_loss(
    policy: torch.Tensor, reference: torch.Tensor, desirable: torch.Tensor, weights: Weights
) -> torch.Tensor:
    """KTO over single signals: a desirable reply's log-ratio to the reference pushed
    above the batch's typical one, an undesirable reply's below it. The typical one
    (KTO's reference point) is the batch's mean log-ratio, never below zero, held fixed."""
    ratio = policy - reference
    point = ratio.detach().mean().clamp(min=0)
    good = weights.desirable * (1 - torch.sigmoid(weights.beta * (ratio - point)))
    bad = weights.undesirable * (1 - torch.sigmoid(weights.beta * (point - ratio)))
    return torch.where(desirable, good, bad).mean()


@torch.no_grad()
def reference_logps(
    model: torch.nn.Module, samples: Sequence[Encoded], device: torch.device | str, batch: int
) -> torch.Tensor:
    """The supervised adapter's log-probabilities, once, `batch` samples at a time."""
    was_training = model.training
    model.eval()
    parts = [
        sequence_logps(model, samples[start : start + batch], device)
        for start in range(0, len(samples), batch)
    ]
    model.train(was_training)
    return torch.cat(parts) if parts else torch.zeros(0)


@dataclass
class PreferenceResult:
    """What the phase did: its steps, their losses, and where it left the pairs."""

    pairs: int = 0
    signals: int = 0
    steps: int = 0
    seconds: float = 0.0
    losses: list[tuple[int, float]] = field(default_factory=list)
    accuracy: float | None = None  # pairs the adapter now prefers as the owner did
    chosen_change: float | None = None  # chosen replies' log-prob per token, now - before
    stopped: str = ""


def prefer(
    fabric: L.Fabric,
    model: torch.nn.Module,
    pairs: Sequence[Pair],
    signals: Sequence[Signal],
    weights: Weights,
    *,
    steps: int,
    batch: int,
    learning_rate: float,
    deadline: float | None = None,
    seed: int = 42,
) -> PreferenceResult:
    """Train the LoRA weights of `model` (the supervised adapter in it) on `pairs` and
    `signals` for `steps` optimizer steps of `batch` of each, or until `deadline`
    (perf_counter seconds). The reference is the model as it comes in."""
    started = time.perf_counter()
    device = fabric.device
    result = PreferenceResult(pairs=len(pairs), signals=len(signals))
    if not pairs and not signals:
        result.stopped = "nothing to learn"
        return result
    chosen = [p.chosen for p in pairs]
    ref_chosen = reference_logps(model, chosen, device, batch)
    ref_rejected = reference_logps(model, [p.rejected for p in pairs], device, batch)
    ref_signals = reference_logps(model, [s.reply for s in signals], device, batch)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    wrapped, optimizer = fabric.setup(model, optimizer)
    wrapped.train()
    order = random.Random(seed)
    pair_order = _cycle(len(pairs), order)
    signal_order = _cycle(len(signals), order)
    result.stopped = "finished"
    for step in range(steps):
        if deadline is not None and time.perf_counter() >= deadline:
            result.stopped = "time_budget"
            break
        loss = torch.zeros((), device=device)
        if pairs:
            take = [next(pair_order) for _ in range(min(batch, len(pairs)))]
            both = sequence_logps(
                wrapped, [*(chosen[i] for i in take), *(pairs[i].rejected for i in take)], device
            )
            tokens = torch.tensor([chosen[i].targets for i in take], device=device)
            index = torch.tensor(take, device=device)
            part, _ = pair_loss(
                (both[: len(take)], both[len(take) :]),
                (ref_chosen[index], ref_rejected[index]),
                tokens,
                weights,
            )
            loss = loss + part
        if signals:
            take = [next(signal_order) for _ in range(min(batch, len(signals)))]
            policy = sequence_logps(wrapped, [signals[i].reply for i in take], device)
            desirable = torch.tensor([signals[i].desirable for i in take], device=device)
            index = torch.tensor(take, device=device)
            loss = loss + signal_loss(policy, ref_signals[index], desirable, weights)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        result.steps = step + 1
        result.losses.append((result.steps, loss.item()))
    if pairs:
        now_chosen = reference_logps(wrapped, chosen, device, batch)
        now_rejected = reference_logps(wrapped, [p.rejected for p in pairs], device, batch)
        margin = (now_chosen - ref_chosen) - (now_rejected - ref_rejected)
        result.accuracy = (margin > 0).float().mean().item()
        tokens = torch.tensor([c.targets for c in chosen], dtype=torch.float32)
        result.chosen_change = ((now_chosen - ref_chosen).cpu() / tokens).mean().item()
    result.seconds = time.perf_counter() - started
    return result


def _cycle(count: int, order: random.Random) -> Iterator[int]:
    """Indexes 0..count-1 in a new shuffled order each pass."""
    while count:
        indexes = list(range(count))
        order.shuffle(indexes)
        yield from indexes


def refusal(
    loss_before: float,
    loss_after: float,
    selection: SelectionReport,
    max_loss_increase: float,
) -> str | None:
    """Why the phase's adapter may not replace the supervised one (None: it may). Its
    loss on held-out replies may be at most `max_loss_increase` worse, and its
    memory-off selection on held-out tasks (`selection`: the supervised adapter as
    "base", the phase's as "adapter") not lower beyond the interval of the paired
    difference; with one conversation there is no interval, and any fall refuses it."""
    if loss_after > loss_before * (1 + max_loss_increase):
        return f"validation loss {loss_before:.4f} -> {loss_after:.4f}"
    if selection.base is None or selection.adapter is None:
        return None  # no task to judge by: the loss decides alone
    interval = selection.difference_ci95
    fell = interval[1] < 0 if interval is not None else selection.adapter < selection.base
    if fell:
        return f"selection {selection.base:.0%} -> {selection.adapter:.0%}"
    return None
