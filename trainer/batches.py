"""Samples become token batches: prompt and response tokens, grouped by length.

The prompt is built by twin.prompt exactly as generation builds it. Only response
tokens are predicted (the prompt is given, not learned). Batches hold samples of
similar length under a token budget, so almost no work is spent on padding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from litgpt import Tokenizer

from twin.prompt.text import Prompt


@dataclass(frozen=True, slots=True)
class Encoded:
    ids: list[int]  # <bos> prompt response <eos>
    prompt_length: int  # tokens before the response

    @property
    def targets(self) -> int:
        """Response tokens predicted (the response and <eos>)."""
        return len(self.ids) - self.prompt_length


def encode(
    samples: Iterable[dict[str, Any]], tokenizer: Tokenizer, prompt: Prompt, max_seq_length: int
) -> list[Encoded]:
    """Tokenize samples; a sample longer than `max_seq_length` loses the oldest part of
    its prompt (after <bos>), never its response."""
    samples = list(samples)
    return encode_rendered(
        [prompt.render_sample(s) for s in samples],
        [s["output"] for s in samples],
        tokenizer,
        max_seq_length,
    )


def encode_rendered(
    prompts: list[str], responses: list[str], tokenizer: Tokenizer, max_seq_length: int
) -> list[Encoded]:
    """Prompts already rendered (a sample's, or the one a draft answered) with their
    responses, cut to `max_seq_length` as `encode` cuts them."""
    out = []
    for prompt_ids, response_ids in zip(
        encode_texts(tokenizer, prompts), encode_texts(tokenizer, responses), strict=True
    ):
        response_ids = [*response_ids[: max_seq_length - 2], tokenizer.eos_id]
        room = max_seq_length - len(response_ids) - 1
        prompt_ids = [tokenizer.bos_id] + (prompt_ids[-room:] if room > 0 else [])
        out.append(Encoded(prompt_ids + response_ids, len(prompt_ids)))
    return out


def encode_texts(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    if tokenizer.backend == "huggingface":
        return [e.ids for e in tokenizer.processor.encode_batch(texts, add_special_tokens=False)]
    return [tokenizer.encode(t, bos=False, eos=False).tolist() for t in texts]


def micro_batches(samples: list[Encoded], token_budget: int) -> list[list[int]]:
    """Indexes of samples grouped by length: each group, padded to its longest, stays
    within `token_budget` tokens (a longer sample goes alone)."""
    order = sorted(range(len(samples)), key=lambda i: (len(samples[i].ids), i))
    groups: list[list[int]] = []
    current: list[int] = []
    for index in order:
        length = len(samples[index].ids)  # the longest so far: sorted ascending
        if current and length * (len(current) + 1) > token_budget:
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    return groups


@dataclass
class Batch:
    idx: torch.Tensor  # (B, T) token ids, padded
    head_positions: torch.Tensor  # (B, T) bool: where the next token is a response token
    targets: torch.Tensor  # (N,) the tokens predicted at those positions, row-major
    tokens: int  # real (unpadded) tokens in the batch

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.idx.to(device),
            self.head_positions.to(device),
            self.targets.to(device),
            self.tokens,
        )


def collate(samples: list[Encoded], pad_id: int = 0) -> Batch:
    width = max(len(s.ids) for s in samples)
    idx = torch.full((len(samples), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(samples), width), dtype=torch.bool)
    targets = []
    for row, sample in enumerate(samples):
        idx[row, : len(sample.ids)] = torch.tensor(sample.ids)
        # Position t predicts token t + 1: the response starts at prompt_length.
        positions[row, sample.prompt_length - 1 : len(sample.ids) - 1] = True
        targets.extend(sample.ids[sample.prompt_length :])
    return Batch(
        idx, positions, torch.tensor(targets, dtype=torch.long), sum(len(s.ids) for s in samples)
    )
