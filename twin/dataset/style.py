"""How someone writes, in numbers: the owner's style profile, and how close replies are.

A profile (typical length, messages per burst, emoji, frequent and filler words,
punctuation, language mix) describes the owner for `/style`. The same measures of
generated replies, set beside the owner's real ones, say whether the twin sounds like
them: `twin eval --generate N`. The authorship score is a character n-gram classifier
trained on the owner's replies against other people's messages: the probability that
a text is the owner's.
"""

from __future__ import annotations

import bisect
import json
import re
import statistics
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import emoji

from twin.dataset.build import build_dataset
from twin.dataset.samples import MakesSamples
from twin.dataset.settings import DatasetSettings

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_PLACEHOLDER = re.compile(r"\[[^\]\n]*\]")  # [photo], [sticker 😂], [EMAIL]
_CYRILLIC = re.compile(r"[а-яА-ЯёЁ]")
_LATIN = re.compile(r"[a-zA-Z]")
_ENDINGS = {"period": ".", "exclamation": "!", "question": "?", "bracket smile": ")"}
SPREAD = 10  # stretches of the history a filler word must show in half of


def messages_of(replies: Sequence[str], separator: str = "\n") -> list[str]:
    return [m.strip() for reply in replies for m in reply.split(separator) if m.strip()]


def words_of(text: str) -> list[str]:
    """The words someone typed: not the placeholders of media or scrubbed data."""
    return [w.lower() for w in _WORD.findall(_PLACEHOLDER.sub(" ", text))]


@dataclass
class StyleProfile:
    replies: int
    median_chars: float
    messages_per_reply: float
    emoji_rate: float  # share of messages with at least one emoji
    favourite_emoji: list[str]
    frequent_words: list[str]
    filler_words: list[str]  # used far more by the owner than by the people they talk to
    punctuation: dict[str, float]  # share of messages ending so, and starting lowercase
    languages: dict[str, float]  # share of messages mostly in Cyrillic / Latin letters

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile(
    replies: Sequence[str], others: Sequence[str] = (), separator: str = "\n", top: int = 10
) -> StyleProfile:
    """The style of `replies` (whole turns, bursts joined by `separator`); `others` (the
    other side of the conversations) is the background filler words stand out against."""
    messages = messages_of(replies, separator)
    if not messages:
        return StyleProfile(len(replies), 0.0, 0.0, 0.0, [], [], [], {}, {})
    emoji_counts = Counter(e["emoji"] for m in messages for e in emoji.emoji_list(m))
    per_reply = [[w for m in messages_of([r], separator) for w in words_of(m)] for r in replies]
    words = Counter(w for reply in per_reply for w in reply)
    return StyleProfile(
        replies=len(replies),
        median_chars=float(statistics.median(len(r) for r in replies)),
        messages_per_reply=len(messages) / max(1, len(replies)),
        emoji_rate=sum(1 for m in messages if emoji.emoji_count(m)) / len(messages),
        favourite_emoji=[e for e, _ in emoji_counts.most_common(5)],
        frequent_words=[w for w, _ in words.most_common(top)],
        filler_words=filler_words(per_reply, Counter(w for t in others for w in words_of(t)), top),
        punctuation=punctuation(messages),
        languages=languages(messages),
    )


def owner_style(
    db_path: Path, dataset: DatasetSettings, samples: MakesSamples
) -> StyleProfile | None:
    """The owner's style as their data shows it now: the replies of the samples a
    training run would build (the same chats, scrubbed), against what others wrote to
    them. None when there is no reply of theirs yet."""
    replies, others = [], []
    with tempfile.TemporaryDirectory(prefix="twin-style-") as folder:
        path = Path(folder) / "samples.jsonl"
        build_dataset(db_path, path, dataset, samples)
        with path.open(encoding="utf-8") as file:
            for line in file:
                sample = json.loads(line)
                replies.append(sample["output"])
                if sample["instruction"]:
                    others.append(sample["instruction"])
    if not replies:
        return None
    return profile(replies, others, samples.burst_separator)


def describe(style: StyleProfile) -> list[str]:
    """The profile as the owner reads it, in `/style` and `twin style`."""
    languages = ", ".join(f"{k} {v:.0%}" for k, v in style.languages.items()) or "-"
    endings = ", ".join(f"{k} {v:.0%}" for k, v in style.punctuation.items())
    return [
        f"Your style, from {style.replies:,} of your replies:",
        f"• typical length: {style.median_chars:.0f} characters, "
        f"{style.messages_per_reply:.1f} messages per burst",
        f"• emoji in {style.emoji_rate:.0%} of messages; favourites: "
        f"{' '.join(style.favourite_emoji) or '-'}",
        f"• frequent words: {', '.join(style.frequent_words) or '-'}",
        f"• your filler words: {', '.join(style.filler_words) or '-'}",
        f"• messages ending with: {endings}",
        f"• languages: {languages}",
    ]


def filler_words(
    replies: Sequence[Sequence[str]], theirs: Counter[str], top: int = 10
) -> list[str]:
    """Words the owner uses at least 3 times as often (per word written) as the others,
    all through his history, the most used first: "короче", "ngl", the owner's own tics.

    `replies` are the words of each reply, in the order they were written. A word that
    fills only some stretches of the history is a topic (a trip, a course), not a tic:
    a filler shows in at least half of SPREAD stretches of it."""
    if not theirs or not replies:
        return []
    mine = Counter(w for reply in replies for w in reply)
    parts = min(SPREAD, len(replies))
    stretches: dict[str, set[int]] = {}
    for index, reply in enumerate(replies):
        for word in reply:
            stretches.setdefault(word, set()).add(index * parts // len(replies))
    total_mine, total_theirs = sum(mine.values()), sum(theirs.values())
    scored = []
    for word, count in mine.items():
        if count < 5 or len(word) < 2 or 2 * len(stretches[word]) < parts:
            continue
        rate_mine = count / total_mine
        rate_theirs = (theirs[word] + 0.5) / total_theirs
        if rate_mine >= 3 * rate_theirs:
            scored.append((count, word))
    return [word for _, word in sorted(scored, reverse=True)[:top]]


def punctuation(messages: Sequence[str]) -> dict[str, float]:
    n = max(1, len(messages))
    shares = {
        name: sum(1 for m in messages if m.endswith(end)) / n for name, end in _ENDINGS.items()
    }
    shares["lowercase start"] = sum(1 for m in messages if m[:1].islower()) / n
    return shares


def languages(messages: Sequence[str]) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for message in messages:
        message = _PLACEHOLDER.sub(" ", message)
        cyrillic, latin = len(_CYRILLIC.findall(message)), len(_LATIN.findall(message))
        if cyrillic or latin:
            counts["cyrillic" if cyrillic >= latin else "latin"] += 1
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.most_common()}


class Authorship:
    """P(the owner wrote this), from character 1-4-grams (logistic regression)."""

    def __init__(self, owner: Sequence[str], others: Sequence[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True
        )
        features = self.vectorizer.fit_transform([*owner, *others])
        labels = [1] * len(owner) + [0] * len(others)
        self.model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(
            features, labels
        )

    def score(self, texts: Sequence[str]) -> float:
        """Mean probability that each text is the owner's; an empty reply says nothing
        of anyone, so it scores 0 (the classifier alone rates it about as a real one)."""
        spoken = [text for text in texts if text.strip()]
        if not spoken:
            return 0.0
        probabilities = self.model.predict_proba(self.vectorizer.transform(spoken))[:, 1]
        return float(probabilities.sum() / len(texts))


def _ks(a: Sequence[float], b: Sequence[float]) -> float:
    """Kolmogorov-Smirnov distance of two samples: 0 same distribution, 1 disjoint."""
    if not a or not b:
        return 1.0
    points = sorted({*a, *b})
    sa, sb = sorted(a), sorted(b)

    def cdf(sample: list[float], x: float) -> float:
        return bisect.bisect_right(sample, x) / len(sample)

    return max(abs(cdf(sa, x) - cdf(sb, x)) for x in points)


def compare(
    real: Sequence[str],
    generated: dict[str, Sequence[str]],
    owner: StyleProfile,
    authorship: Authorship,
    separator: str = "\n",
) -> dict[str, Any]:
    """Style measures of each side's replies beside the owner's real replies to the same
    messages. Closer to `real` is better; authorship is P(owner), higher is better."""

    def measures(replies: Sequence[str]) -> dict[str, Any]:
        messages = messages_of(replies, separator)
        fillers = set(owner.filler_words)
        with_filler = sum(1 for r in replies if fillers & set(words_of(r)))
        return {
            "median_chars": float(statistics.median(len(r) for r in replies)) if replies else 0.0,
            "length_distance": _ks([len(r) for r in replies], [len(r) for r in real]),
            "messages_per_reply": len(messages) / max(1, len(replies)),
            "emoji_rate": sum(1 for m in messages if emoji.emoji_count(m)) / max(1, len(messages)),
            "punctuation": punctuation(messages),
            "filler_word_rate": with_filler / max(1, len(replies)),
            "authorship": authorship.score(replies),
        }

    return {
        "owner_filler_words": owner.filler_words,
        "real": measures(real),
        **{side: measures(replies) for side, replies in generated.items()},
    }
