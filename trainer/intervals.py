"""How sure a share of held-out tasks is: a 95 % bootstrap interval over conversations.

Replies of one conversation are not independent draws (one topic, one mood, often the
same words), so resampling single tasks would claim more certainty than there is. The
bootstrap here draws whole conversations with replacement, as many as there are, and
takes the middle 95 % of the resampled shares: of the base model, of the adapter, and
of their paired difference (the same tasks on both sides, so the difference's interval
is narrower than the two intervals suggest).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Intervals:
    base: list[float]  # [low, high]
    adapter: list[float]
    difference: list[float]  # adapter - base


def conversation_intervals(
    conversations: Sequence[Sequence[int]], resamples: int = RESAMPLES, seed: int = 0
) -> Intervals | None:
    """Intervals of the base model's and the adapter's hit rates from each
    conversation's [tasks, base hits, adapter hits]; None with fewer than two
    conversations, where resampling has nothing to vary."""
    if len(conversations) < 2:
        return None
    rng = random.Random(seed)
    shares: list[tuple[float, float, float]] = []
    for _ in range(resamples):
        tasks = hits_base = hits_adapter = 0
        for count, base, adapter in rng.choices(conversations, k=len(conversations)):
            tasks += count
            hits_base += base
            hits_adapter += adapter
        shares.append((hits_base / tasks, hits_adapter / tasks, (hits_adapter - hits_base) / tasks))
    return Intervals(*(_middle([share[i] for share in shares]) for i in range(3)))


def _middle(values: list[float]) -> list[float]:
    """The central LEVEL of `values` (percentile bounds, rounded for reports)."""
    values = sorted(values)
    tail = (1 - LEVEL) / 2
    low = values[int(tail * len(values))]
    high = values[min(len(values) - 1, int((1 - tail) * len(values)))]
    return [round(low, 4), round(high, 4)]
