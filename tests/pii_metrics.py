"""Recall and precision of the PII scrubber on the labelled set, per type."""

from __future__ import annotations

from collections import Counter

from tests.pii_cases import cases
from twin.dataset.pii import TYPES, scrub


def measure(
    lines: str | None = None,
) -> tuple[dict[str, dict[str, float]], list[tuple[str, str, str]]]:
    """Per type: support, tp, fp, fn, recall, precision; and the cases that differ."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    support: Counter[str] = Counter()
    wrong = []
    for text, expected, labels in cases(lines):
        produced = scrub(text)
        if produced != expected:
            wrong.append((text, expected, produced))
        found: Counter[str] = Counter()
        for kind, value in labels:
            support[kind] += 1
            if value not in produced and f"[{kind}]" in produced:
                tp[kind] += 1
                found[kind] += 1
            else:
                fn[kind] += 1
        for kind in TYPES:
            extra = produced.count(f"[{kind}]") - expected.count(f"[{kind}]")
            fp[kind] += max(0, extra)
    table = {}
    for kind in TYPES:
        table[kind] = {
            "support": support[kind],
            "tp": tp[kind],
            "fp": fp[kind],
            "fn": fn[kind],
            "recall": tp[kind] / support[kind] if support[kind] else 1.0,
            "precision": tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0,
        }
    return table, wrong
