"""The style measures: the owner's profile, authorship, and generated replies beside
the real ones. Small hand-written sets whose right answers can be counted by eye."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.dataset.style import Authorship, compare, describe, profile, words_of

# Bursts joined by the separator, as in the samples.
OWNER = [
    "ну норм\nкороче го",
    "ахах 😂\nну ок",
    "ну такое",
    "[photo]\nну короче вот",
    "lol ok 🙃",
    "ну го завтра",
]
OTHERS = [
    "Привет! Как дела?",
    "Ты придёшь завтра?",
    "Хорошо, до встречи.",
    "Смотри, что я нашла.",
    "Почему не отвечаешь?",
    "Давай в семь.",
]


def test_profile_counts_what_the_owner_does() -> None:
    style = profile(OWNER, OTHERS)
    assert style.replies == 6
    assert style.messages_per_reply == pytest.approx(9 / 6)
    assert style.median_chars == 12  # lengths 8, 8, 12, 12, 17, 21
    assert style.emoji_rate == pytest.approx(2 / 9)
    assert style.favourite_emoji == ["😂", "🙃"]
    assert style.frequent_words[:2] == ["ну", "короче"]
    assert style.filler_words == ["ну"]  # 5 times, never by the others; "короче" only 2
    assert style.punctuation["lowercase start"] == pytest.approx(8 / 9)
    assert style.punctuation["period"] == 0
    # "[photo]" has no language: 7 Russian messages and one English
    assert style.languages == {"cyrillic": pytest.approx(7 / 8), "latin": pytest.approx(1 / 8)}
    assert describe(style)[0] == "Your style, from 6 of your replies:"


def test_placeholders_are_not_words() -> None:
    assert words_of("[photo] смотри [sticker 😂] мой [EMAIL] ok") == ["смотри", "мой", "ok"]
    assert "photo" not in profile(OWNER, OTHERS).frequent_words


def test_nothing_to_describe_is_an_empty_profile() -> None:
    style = profile(["", "\n"], OTHERS)
    assert (style.messages_per_reply, style.frequent_words, style.languages) == (0.0, [], {})


def test_authorship_tells_the_owner_from_the_others() -> None:
    judge = Authorship(OWNER * 3, OTHERS * 3)
    assert judge.score(["ну короче го"]) > 0.5 > judge.score(["Хорошо, давай завтра."])
    assert judge.score([]) == 0.0
    # An empty reply is nobody's: it scores 0 and pulls the mean down, whatever the
    # classifier would make of no characters at all.
    assert judge.score(["", "  \n"]) == 0.0
    assert judge.score(["ну короче го", ""]) == pytest.approx(judge.score(["ну короче го"]) / 2)


def test_a_word_that_fills_one_stretch_of_the_history_is_a_topic_not_a_filler() -> None:
    """On real typed chat the fillers came out as "mexico" and "homework": words of one
    trip, one term. A tic shows all through the history."""
    tic = [f"ngl reply {i}" for i in range(40)]
    trip = [f"{'mexico ' * 3}plans {i}" if 10 <= i < 16 else f"other {i}" for i in range(40)]
    replies = [f"{a}\n{b}" for a, b in zip(tic, trip, strict=True)]
    style = profile(replies, ["what are the plans?", "how was it?"] * 20)
    assert "ngl" in style.filler_words
    assert "mexico" not in style.filler_words
    assert "mexico" in style.frequent_words  # frequent it is, and the owner's alone


def test_compare_sets_each_side_beside_the_real_replies() -> None:
    judge = Authorship(OWNER * 3, OTHERS * 3)
    real = ["ну го", "ахах\nок"]
    result = compare(
        real,
        {"base": ["Hello, how are you?", "Yes."], "adapter": ["ну го", "ахах\nок"]},
        profile(OWNER, OTHERS),
        judge,
    )
    assert result["owner_filler_words"] == ["ну"]
    assert result["adapter"]["length_distance"] == 0.0
    assert result["adapter"]["messages_per_reply"] == result["real"]["messages_per_reply"] == 1.5
    assert result["base"]["length_distance"] == 0.5  # lengths 19, 4 against 5, 7
    assert (
        result["base"]["filler_word_rate"] == 0.0 and result["adapter"]["filler_word_rate"] == 0.5
    )
    assert result["adapter"]["authorship"] > result["base"]["authorship"]


async def test_the_owners_knobs_sit_on_the_configured_settings(tmp_path: Path) -> None:
    """engine.style.owner_generation, which every reply path calls: the stored /style
    knobs win, the rest stays as configured, and a reset goes back to the configuration."""
    from storage import open_database
    from storage import settings as stored_settings
    from twin.engine.settings import GenerationSettings
    from twin.engine.style import owner_generation

    configured = GenerationSettings(temperature=0.5, top_k=20)
    async with open_database(tmp_path / "t.db") as db:
        assert await owner_generation(db, configured) == configured
        await stored_settings.set_knob(db, "temperature", 1.1)
        await stored_settings.set_knob(db, "length", "short")
        now = await owner_generation(db, configured)
        assert (now.temperature, now.length, now.top_k) == (1.1, "short", 20)
        await stored_settings.delete(db, stored_settings.STYLE)
        assert await owner_generation(db, configured) == configured
