"""How well a model predicts the owner's replies: loss per response token.

The same function scores training batches, validation during training, and the
comparison of base model and adapter in `twin eval`, so the numbers agree everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from trainer.batches import Batch, Encoded, collate, micro_batches
from twin.model.embedding import head_dtype, vocabulary_slices
from twin.model.lora import base_and_adapter, frozen_linear
from twin.model.scoring import head_losses

HEAD_ROWS = 128  # rows of a trainable output layer's logits alive at once: 128 x 262k floats


class Meter(Protocol):
    """The progress of a long evaluation: `expect` announces work to come (all of it,
    before it starts, so that a bar knows its end), a call reports work done, in the
    meter's unit (tokens scored, replies generated). The commands draw it as a bar;
    without one, nothing is drawn."""

    def expect(self, amount: int) -> None: ...

    def __call__(self, amount: int) -> None: ...


class NoMeter:
    def expect(self, amount: int) -> None:
        pass

    def __call__(self, amount: int) -> None:
        pass


def batch_loss(
    model: torch.nn.Module, batch: Batch, recompute: bool = False
) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the batch's response tokens, and how many there are.

    The output layer runs only at those positions, and a few rows at a time: a
    micro-batch of a thousand response tokens would otherwise hold gigabytes of logits
    (a 262k-token vocabulary, in float32, plus their softmax and gradient). `recompute`:
    see model.lora.TwinGPT."""
    hidden = model(
        batch.idx, head_positions=batch.head_positions, return_hidden=True, recompute=recompute
    )
    return token_losses(model.lm_head, hidden, batch.targets).sum(), batch.targets.numel()


def token_losses(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The cross-entropy of each target token given the hidden state before it.

    A frozen plain linear head (the usual case: LoRA leaves the output layer alone)
    takes the fused path: the loss and, at once, the gradient of the hidden states, a
    slice of the vocabulary at a time, so no full row of logits ever exists. A head
    that trains (LoRA on "head") goes HEAD_ROWS rows at a time through autograd
    instead. The hidden states come in the head's compute dtype: Fabric hands a bf16
    model's outputs back in float32."""
    hidden = hidden.to(head_dtype(head))
    linear = frozen_linear(head)
    if linear is not None:
        return _LinearCrossEntropy.apply(hidden, linear.weight, targets)
    return head_losses(head, hidden, targets, rows=HEAD_ROWS)


class _LinearCrossEntropy(torch.autograd.Function):
    """Cross-entropy of `hidden @ weight.T` per row, with the hidden states' gradient
    computed in the same pass (the weight is frozen).

    The vocabulary goes a slice at a time (model.embedding.vocabulary_slices, widened
    to the hidden states' dtype there: the weight may be stored in bf16), with a
    running maximum and sum for the normaliser, as in online softmax: the loss is
    `log sum exp(logits) - logit[target]`, and the gradient `softmax @ weight -
    weight[target]`, whose sum over slices is rescaled whenever the maximum grows."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        rows = hidden.size(0)
        target_logits = torch.empty(rows, dtype=torch.float32, device=hidden.device)
        peak = torch.full((rows,), -torch.inf, dtype=torch.float32, device=hidden.device)
        total = torch.zeros(rows, dtype=torch.float32, device=hidden.device)
        need_grad = ctx.needs_input_grad[0]
        weighted = torch.zeros_like(hidden, dtype=torch.float32) if need_grad else None
        first = 0  # the vocabulary id of the slice's first row
        for slice_weight in vocabulary_slices(weight, hidden.dtype):
            logits = (hidden @ slice_weight.T).float()
            # each target's logit as the normaliser sees it (the same rounding in bf16)
            inside = (targets >= first) & (targets < first + slice_weight.size(0))
            target_logits[inside] = logits[inside, targets[inside] - first]
            first += slice_weight.size(0)
            new_peak = torch.maximum(peak, logits.amax(-1))
            shrink = (peak - new_peak).exp_()  # exp(-inf) = 0 on the first slice
            exps = logits.sub_(new_peak[:, None]).exp_()
            total.mul_(shrink).add_(exps.sum(-1))
            if weighted is not None:
                weighted.mul_(shrink[:, None]).add_(exps.to(hidden.dtype) @ slice_weight)
            peak = new_peak
        losses = peak + total.log() - target_logits
        if weighted is None:
            ctx.save_for_backward(hidden.new_empty(0))
        else:
            wanted = weight[targets].to(hidden.dtype)
            ctx.save_for_backward((weighted / total[:, None]).to(hidden.dtype) - wanted)
        return losses

    @staticmethod
    def backward(ctx: Any, grad_losses: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * grad_losses[:, None].to(grad.dtype), None, None


def mean_loss(
    model: torch.nn.Module,
    samples: list[Encoded],
    token_budget: int,
    device: torch.device | str,
    meter: Meter | None = None,
) -> float:
    """Mean loss per response token over `samples`."""
    total, count = loss_sums(model, samples, token_budget, device, meter)
    return total / max(count, 1)


@torch.no_grad()
def loss_sums(
    model: torch.nn.Module,
    samples: list[Encoded],
    token_budget: int,
    device: torch.device | str,
    meter: Meter | None = None,
) -> tuple[float, int]:
    """The loss summed over the response tokens of `samples`, and how many there are:
    what ranks that each measured a share of the samples add up."""
    meter = meter or NoMeter()  # told the work done; the caller announced it all
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for group in micro_batches(samples, token_budget):
        loss, n = batch_loss(model, collate([samples[i] for i in group]).to(device))
        total += loss.item()
        count += n
        meter(sum(len(samples[i].ids) for i in group))
    model.train(was_training)
    return total, count


@dataclass
class LossReport:
    samples: int
    tokens: int
    base_loss: float
    adapter_loss: float
    base_perplexity: float
    adapter_perplexity: float
    improvement: float  # relative drop of the loss: (base - adapter) / base

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    model: torch.nn.Module,
    adapter: dict[str, torch.Tensor],
    samples: list[Encoded],
    token_budget: int,
    device: torch.device | str,
    meter: Meter | None = None,
) -> LossReport:
    """The base model (LoRA off) and the adapter on the same samples."""
    base, tuned = base_and_adapter(
        model, adapter, lambda: mean_loss(model, samples, token_budget, device, meter)
    )
    return LossReport(
        samples=len(samples),
        tokens=sum(s.targets for s in samples),
        base_loss=base,
        adapter_loss=tuned,
        base_perplexity=math.exp(min(base, 50)),
        adapter_perplexity=math.exp(min(tuned, 50)),
        improvement=(base - tuned) / base if base else 0.0,
    )
