"""How likely replies are right after a prefix, mean log-probability per reply token:
what selection scores the twin by (trainer.sense) and what the reply engine ranks its
candidates by (twin.engine.generate), so the two measure the same thing.

The prefix goes through the model once; its cache rows are copied to every reply,
which then go through together, padded at the end (causal: padding after a reply
cannot change it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from twin.model.embedding import head_dtype
from twin.model.lora import TwinGPT

# The loss of each target token from the hidden state before it, through the head:
# `head_losses` here, or training's fused one (trainer.loss.token_losses).
TokenLosses = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
HEAD_ROWS = 32  # positions whose logits (262k of them each) are alive at once


def head_losses(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, rows: int = HEAD_ROWS
) -> torch.Tensor:
    """Cross-entropy per target token through `head`, `rows` rows of logits at a time
    (through autograd where the head trains: trainer.loss uses it so)."""
    hidden = hidden.to(head_dtype(head))
    if not hidden.size(0):
        return hidden.new_zeros(0, dtype=torch.float32)
    return torch.cat(
        [
            F.cross_entropy(
                head(hidden[start : start + rows]).float(),
                targets[start : start + rows],
                reduction="none",
            )
            for start in range(0, hidden.size(0), rows)
        ]
    )


@torch.no_grad()
def reply_logprobs(
    model: TwinGPT,
    prefix: list[int],
    replies: list[list[int]],
    device: torch.device | str,
    losses: TokenLosses = head_losses,
) -> list[float]:
    """Mean log-probability per token of each reply right after `prefix`. The model's
    KV cache is resized for the replies: a caller that decodes sets its own again."""
    width = max(map(len, replies))
    dtype = head_dtype(model.lm_head)  # what the model computes in (its embedding may be narrower)
    model.set_kv_cache(len(replies), len(prefix) + width, device=torch.device(device), dtype=dtype)
    prefill = torch.tensor([prefix], device=device)
    last = model(
        prefill,
        torch.arange(len(prefix), device=device),
        len(prefix),
        head_positions=(slice(None), slice(-1, None)),
        return_hidden=True,
    ).reshape(1, -1)
    for block in model.transformer.h:
        cache = block.attn.kv_cache
        cache.k[1:, :, : len(prefix)] = cache.k[:1, :, : len(prefix)]
        cache.v[1:, :, : len(prefix)] = cache.v[:1, :, : len(prefix)]
    idx = torch.zeros((len(replies), width), dtype=torch.long)
    positions = torch.zeros((len(replies), width), dtype=torch.bool)
    for row, reply in enumerate(replies):
        idx[row, : len(reply)] = torch.tensor(reply)
        positions[row, : len(reply) - 1] = True  # position j predicts token j + 1
    hidden = model(
        idx.to(device),
        torch.arange(len(prefix), len(prefix) + width, device=device),
        len(prefix) + width,
        head_positions=positions.to(device),
        return_hidden=True,
    )
    first = losses(
        model.lm_head,
        last.expand(len(replies), -1),
        torch.tensor([reply[0] for reply in replies], device=device),
    )
    rest = losses(
        model.lm_head,
        hidden,
        torch.tensor([t for reply in replies for t in reply[1:]], device=device),
    )
    out, start = [], 0
    for row, reply in enumerate(replies):
        end = start + len(reply) - 1
        out.append(-(first[row] + rest[start:end].sum()).item() / len(reply))
        start = end
    return out
