"""The token embedding and output layer kept in bf16 while the model computes in float32.

Gemma's embedding is a 262k x 640 matrix, tied to the output layer: 671 MB in float32,
more than half of the embedded model. On a CPU without native bf16 twin trains in
float32, yet this matrix never trains (LoRA leaves it alone) and the checkpoint holds
it in bf16: keeping it so halves it and changes none of its values. Rows are widened
where they are used: the few looked up per token, and the output layer one slice of
the vocabulary at a time (`VOCAB_ROWS`), so no float32 copy of the whole matrix ever
exists.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from litgpt import lora

VOCAB_ROWS = 16384  # rows of the output layer widened at once: 16k x 640 floats, 42 MB


class NarrowEmbedding(torch.nn.Embedding):
    """An embedding whose weight is stored in a narrower dtype than the model computes in."""

    def __init__(self, weight: torch.nn.Parameter, compute_dtype: torch.dtype) -> None:
        super().__init__(weight.size(0), weight.size(1), device="meta")
        self.weight = weight  # the very parameter the output layer holds: tied
        self.compute_dtype = compute_dtype

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.weight).to(self.compute_dtype)


class NarrowHead(torch.nn.Linear):
    """An output layer (no bias) whose weight is stored narrower than its input."""

    def __init__(self, weight: torch.nn.Parameter, compute_dtype: torch.dtype) -> None:
        super().__init__(weight.size(1), weight.size(0), bias=False, device="meta")
        self.weight = weight
        self.compute_dtype = compute_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.compute_dtype)
        return torch.cat([x @ rows.T for rows in vocabulary_slices(self.weight, x.dtype)], -1)


def vocabulary_slices(weight: torch.Tensor, dtype: torch.dtype) -> Iterator[torch.Tensor]:
    """An output layer's weight VOCAB_ROWS rows at a time, each widened to `dtype` only
    when its turn comes (a view, not a copy, where it already is `dtype`)."""
    for start in range(0, weight.size(0), VOCAB_ROWS):
        yield weight[start : start + VOCAB_ROWS].to(dtype)


def head_dtype(head: torch.nn.Module) -> torch.dtype:
    """The dtype an output layer computes in: its weight's, unless it stores it narrower."""
    narrow = getattr(head, "compute_dtype", None)
    return narrow if narrow is not None else next(head.parameters()).dtype


def narrow_tied_embedding(model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> bool:
    """Store `model`'s tied, frozen embedding and output layer in `dtype` (their values
    unchanged where the checkpoint holds them in `dtype`, as Gemma's does). False, and
    nothing changed, where that does not apply: an untied or trainable output layer, or
    one already that narrow."""
    wte, head = model.transformer.wte, model.lm_head
    if isinstance(head, lora.LoRALinear) and head.r == 0:
        head = head.linear  # litgpt wraps the output layer even when LoRA leaves it alone
    weight = wte.weight
    if type(head) is not torch.nn.Linear or head.weight is not weight:
        return False
    if weight.requires_grad or dtype.itemsize >= weight.dtype.itemsize:
        return False
    narrow = torch.nn.Parameter(weight.detach().to(dtype), requires_grad=False)
    model.transformer.wte = NarrowEmbedding(narrow, weight.dtype)
    model.lm_head = NarrowHead(narrow, weight.dtype)
    return True
