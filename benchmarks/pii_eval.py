"""Recall and precision of the PII scrubber per type, on the project's labelled set.

    python benchmarks/pii_eval.py

Prints one table for the set the scrubber was developed on, one for the held-out lines
written afterwards, one for the extended set of the second round of types (one-time
codes, INN, SNILS, passports, accounts, keys, wallets, seed phrases, invites,
addresses), one for the forms an audit found reaching samples (passwords without ':',
passphrases, a lower-case IBAN, a card over two messages) with their look-alikes, then
one JSON object with them all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pii_cases import (
    AUDIT,
    AUDIT_LOOK_ALIKES,
    EXTENDED,
    EXTENDED_HELDOUT,
    EXTENDED_LOOK_ALIKES,
    HELDOUT,
    NEGATIVES,
    POSITIVES,
    cases,
)
from tests.pii_metrics import measure


def main() -> None:
    result = {}
    sets = (
        ("development", POSITIVES + NEGATIVES),
        ("held_out", HELDOUT),
        ("extended", EXTENDED + EXTENDED_LOOK_ALIKES),  # the second round of types
        ("extended_held_out", EXTENDED_HELDOUT),  # written after it, never tuned on
        ("audit", AUDIT + AUDIT_LOOK_ALIKES),  # the forms an audit found, and look-alikes
    )
    for name, text in sets:
        table, wrong = measure(text)
        print(f"{name}: {len(cases(text))} strings")
        print(f"  {'type':<7} {'support':>7} {'recall':>7} {'precision':>9}")
        for kind, row in table.items():
            print(f"  {kind:<7} {row['support']:>7} {row['recall']:>7.3f} {row['precision']:>9.3f}")
        for text_in, expected, produced in wrong:
            print(f"  MISS {text_in!r}: expected {expected!r}, got {produced!r}")
        result[name] = {
            k: {
                "recall": round(v["recall"], 3),
                "precision": round(v["precision"], 3),
                "support": v["support"],
            }
            for k, v in table.items()
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
