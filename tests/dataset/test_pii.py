"""The PII scrubber against the project's labelled set (tests/pii_cases.py)."""

from __future__ import annotations

import pytest

from tests.pii_cases import (
    AUDIT,
    AUDIT_LOOK_ALIKES,
    EXTENDED,
    EXTENDED_LOOK_ALIKES,
    HELDOUT,
    NEGATIVES,
    POSITIVES,
    cases,
)
from tests.pii_metrics import measure
from twin.dataset.pii import ScrubStats, iban_ok, luhn_ok, scrub

ALL = POSITIVES + NEGATIVES + HELDOUT + EXTENDED + EXTENDED_LOOK_ALIKES + AUDIT + AUDIT_LOOK_ALIKES


def test_the_labelled_set_is_big_enough_and_in_both_languages() -> None:
    everything = cases(ALL)
    assert len(everything) >= 350
    assert len(cases(EXTENDED + EXTENDED_LOOK_ALIKES)) >= 150
    assert sum(1 for _, _, labels in everything if not labels) >= 100  # look-alikes
    assert any("а" <= c <= "я" for text, _, _ in everything for c in text)


@pytest.mark.parametrize("kind", ["EMAIL", "PHONE", "CARD"])
def test_recall_floor_for_contacts_and_cards(kind: str) -> None:
    table, _ = measure(ALL)
    assert table[kind]["recall"] >= 0.99, table[kind]


def test_every_type_recall_and_precision() -> None:
    table, wrong = measure(ALL)
    for kind, row in table.items():
        assert row["support"] >= 5, kind
        assert row["recall"] >= 0.95 and row["precision"] >= 0.95, (kind, row, wrong)


def test_look_alikes_pass_through_unchanged() -> None:
    for text, _, labels in cases(NEGATIVES + EXTENDED_LOOK_ALIKES + AUDIT_LOOK_ALIKES):
        assert not labels
        assert scrub(text) == text


def test_placeholders_keep_the_sentence_and_are_counted() -> None:
    stats = ScrubStats()
    out = scrub("позвони +7 921 555-13-07 или напиши a@b.example, пароль: hunter22", stats)
    assert out == "позвони [PHONE] или напиши [EMAIL], пароль: [SECRET]"
    assert dict(stats.counts) == {"PHONE": 1, "EMAIL": 1, "SECRET": 1}


def test_what_an_audit_found_reaching_samples_is_scrubbed() -> None:
    """Passwords said without ':' or '=', a passphrase's every word, a lower-case IBAN
    and a card typed over two messages of one burst reached training samples."""
    table, wrong = measure(AUDIT + AUDIT_LOOK_ALIKES)
    assert wrong == []
    assert table["SECRET"]["support"] >= 15 and table["CARD"]["support"] >= 2


async def test_a_card_over_two_messages_is_scrubbed_in_the_sample(tmp_path) -> None:
    """The burst becomes one turn before scrubbing: each half alone is no card number."""
    from tests.exports import chat, dialogue, full_export, import_into
    from twin.dataset.build import build_dataset, read_samples
    from twin.dataset.settings import DatasetSettings
    from twin.prompt.samples import SampleMaker
    from twin.prompt.settings import PromptSettings

    lines = [(0, "them: скинь номер карты"), (30, "me: 4111 1111"), (35, "me: 1111 1111")]
    db = tmp_path / "twin.db"
    await import_into(db, full_export([chat(2000, dialogue(2000, lines))]))
    out = tmp_path / "samples.jsonl"
    build_dataset(db, out, DatasetSettings(val_fraction=0), SampleMaker(PromptSettings()))
    (sample,) = read_samples(out)
    assert sample["output"] == "[CARD]"


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")
