"""Replies that repeat or copy earlier ones, and held-out prompts drawn across
conversations: what keeps evaluation from calling copying sense."""

from __future__ import annotations

import random

from sacrebleu.metrics import CHRF

from trainer.copies import COPY, REPEAT, Replies, echoes
from trainer.evaluate import across_conversations


def test_a_reply_is_near_an_earlier_one_by_chrf() -> None:
    earlier = Replies(["Tomorrow then", "к 19\nесли автобус не подведёт)", "ок", "haha yes"])
    assert earlier.near("tomorrow then", REPEAT)  # the same words, case aside
    assert earlier.near("к 16\nесли автобус не подведёт)", REPEAT)  # chrF 0.90
    assert not earlier.near("к 16\nесли автобус не подведёт)", 0.95)
    assert earlier.near("ок!", REPEAT)  # too short for a trigram: scored directly
    assert not earlier.near("pasta at mine, bring wine", REPEAT)
    assert not earlier.near("", REPEAT) and not earlier.near("  ", REPEAT)
    assert not Replies([]).near("anything", REPEAT)


def test_the_index_finds_what_scoring_every_pair_finds() -> None:
    """The trigram filter only saves time: on made-up replies that share words, it
    says exactly what chrF against every earlier reply says."""
    rng = random.Random(7)
    words = "ну да ок го завтра сегодня кофе работа дома yes no later sure coffee home".split()

    def reply() -> str:
        return " ".join(rng.choices(words, k=rng.randint(1, 6)))

    earlier = [reply() for _ in range(300)]
    index, chrf = Replies(earlier), CHRF()
    for text in [reply() for _ in range(150)]:
        best = max(chrf.sentence_score(text, [e]).score / 100 for e in earlier)
        for threshold in (0.6, REPEAT, COPY):
            assert index.near(text, threshold) == (best >= threshold), (text, threshold)


def test_a_reply_that_mostly_repeats_the_message_echoes_it() -> None:
    assert echoes("God bless thy lungs, and that of me…", "God bless thy lungs, good knight!")
    assert not echoes("I think so too", "do you think so?")
    assert not echoes("haha no", "haha why not")


def test_generated_replies_answer_messages_from_every_conversation() -> None:
    """The first held-out replies are one conversation; the draw takes one from each
    conversation before a second from any, always the same ones."""
    samples = [
        {"instruction": f"m{c}.{i}", "chat_id": 1, "conversation": c}
        for c in range(5)
        for i in range(6)
    ] + [{"instruction": "", "chat_id": 1, "conversation": 9}]  # an opener answers nothing
    drawn = across_conversations(samples, 7)
    assert len(drawn) == 7 and all(s["instruction"] for s in drawn)
    assert {s["conversation"] for s in drawn[:5]} == set(range(5))
    assert drawn == across_conversations(samples, 7)
    assert len(across_conversations(samples, 100)) == 30  # all there are
