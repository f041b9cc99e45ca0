"""How well a model predicts the owner's replies: loss per response token.

The same function scores training batches, validation during training, and the
comparison of base model and adapter in `twin eval`, so the numbers agree everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from model.lora import load_adapter
from trainer.batches import Batch, Encoded, collate, micro_batches


def batch_loss(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the batch's response tokens, and how many there are.

    The output layer runs only at those positions (TwinGPT's head_positions)."""
    logits = model(batch.idx, head_positions=batch.head_positions)
    loss = F.cross_entropy(logits.float(), batch.targets, reduction="sum")
    return loss, batch.targets.numel()


@torch.no_grad()
def mean_loss(
    model: torch.nn.Module, samples: list[Encoded], token_budget: int, device: torch.device | str
) -> float:
    """Mean loss per response token over `samples`."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for group in micro_batches(samples, token_budget):
        loss, n = batch_loss(model, collate([samples[i] for i in group]).to(device))
        total += loss.item()
        count += n
    model.train(was_training)
    return total / max(count, 1)


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
) -> LossReport:
    """The base model (LoRA off) and the adapter on the same samples."""
    load_adapter(model, None)
    base = mean_loss(model, samples, token_budget, device)
    load_adapter(model, adapter)
    tuned = mean_loss(model, samples, token_budget, device)
    return LossReport(
        samples=len(samples),
        tokens=sum(s.targets for s in samples),
        base_loss=base,
        adapter_loss=tuned,
        base_perplexity=math.exp(min(base, 50)),
        adapter_perplexity=math.exp(min(tuned, 50)),
        improvement=(base - tuned) / base if base else 0.0,
    )
