"""What the commands print, in words a user reads without the documentation: which way
each style row is better, and what a selection share was measured on."""

from __future__ import annotations

from twin.reports import format_selection, format_style

SIDE = {
    "median_chars": 25,
    "messages_per_reply": 1.5,
    "emoji_rate": 0.1,
    "filler_word_rate": 0.5,
    "length_distance": 0.2,
    "authorship": 0.7,
}


def test_every_style_row_says_which_way_is_better() -> None:
    style = {
        "samples": 8,
        "owner_filler_words": ["ну"],
        "real": SIDE,
        "base": SIDE,
        "adapter": SIDE,
        "similarity": {"base": 0.1, "adapter": 0.5},
    }
    lines = format_style(style).splitlines()
    assert lines[1].split() == ["yours", "base", "twin", "better"]
    expected = {
        "median length, chars": "closer to yours",
        "with emoji": "closer to yours",
        "length distance": "lower",
        "sounds like you": "higher",
        "chrF to yours": "higher (1: the same words)",
    }
    for label, direction in expected.items():
        (line,) = [line for line in lines if line.strip().startswith(label)]
        assert line.endswith(direction)


def test_selection_says_what_it_counted_and_never_a_number_from_no_task() -> None:
    measured = {
        "base": 0.2,
        "adapter": 0.5,
        "candidates": 10,
        "tasks": 34,
        "conversations": 5,
        "difference_ci95": [0.1, 0.4],
    }
    text = format_selection(measured)
    assert "base 20%   twin 50%" in text
    assert "your real reply picked out of 10 of yours with memory off" in text
    assert "on 34 held-out replies from 5 conversations; chance 10%" in text
    none = format_selection({"base": None, "adapter": None, "reason": "no held-out reply"})
    assert none.strip() == "selection       not measured: no held-out reply"
