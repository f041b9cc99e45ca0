"""Is a reply a copy of one the model could have seen?

People repeat themselves ("ok", "haha", the same joke), and a model with memory can
paste what it recalls. Neither is understanding, so evaluation sets such replies apart:
a held-out reply that repeats an earlier one (sense's *repeat* tasks) and a generated
reply that copies a training reply are counted on their own.

"Close" is chrF (sacrebleu's, 0..1) of the reply against the earlier one. It costs 75 us
a pair, too much for every held-out reply against every training reply, so an inverted
index of character trigrams first finds the earlier replies whose trigram F-score (the
middle of the n-grams chrF averages, and within 0.05 of it on development replies)
comes within a margin of the threshold; only those are scored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from sacrebleu.metrics import CHRF

REPEAT = 0.8  # a held-out reply this close to an earlier one repeats it
COPY = 0.9  # a generated reply this close to a training reply copies it
# A generated reply this close to the message it answers echoes it ("God bless thy
# lungs, good knight!" answered "God bless thy lungs, and that of me": 0.59).
ECHO = 0.5
_BETA2 = 4  # chrF's beta of 2, squared: recall weighs four times precision
_MARGIN = 0.15  # how far below the threshold a trigram F-score is still scored
_N = 3


class Replies:
    """Earlier replies, indexed to ask whether a reply comes close to any of them."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._chrf = CHRF()
        self._texts = sorted({text for text in texts if _letters(text)})
        keys = [_letters(text) for text in self._texts]
        self._exact = set(keys)
        self._sizes = [len(key) - _N + 1 for key in keys]  # trigrams in each
        self._short = [i for i, key in enumerate(keys) if len(key) < _N]  # none at all
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for index, key in enumerate(keys):
            for gram, count in _grams(key).items():
                self._postings[gram].append((index, count))

    def __len__(self) -> int:
        return len(self._texts)

    def near(self, text: str, threshold: float) -> bool:
        """Whether `text` scores chrF >= `threshold` against one of the replies."""
        key = _letters(text)
        if not key:
            return False
        if key in self._exact:
            return True
        floor = threshold - _MARGIN
        candidates = list(self._short)  # too short to have trigrams: scored directly
        grams = _grams(key)
        if grams:
            size = len(key) - _N + 1
            matched: defaultdict[int, int] = defaultdict(int)
            for gram, count in grams.items():
                for index, theirs in self._postings.get(gram, ()):
                    matched[index] += min(count, theirs)
            candidates += [
                index
                for index, shared in matched.items()
                if _f_score(shared / size, shared / self._sizes[index]) >= floor
            ]
        for index in candidates:
            score = self._chrf.sentence_score(text, [self._texts[index]]).score / 100
            if score >= threshold:
                return True
        return False


def _letters(text: str) -> str:
    """The text as chrF reads it: its characters without whitespace (case folded for the
    exact check, so that "Ok" repeats "ok")."""
    return "".join(text.casefold().split())


def _grams(key: str) -> Counter[str]:
    return Counter(key[i : i + _N] for i in range(len(key) - _N + 1))


def _f_score(precision: float, recall: float) -> float:
    return (1 + _BETA2) * precision * recall / (_BETA2 * precision + recall)


def echoes(reply: str, message: str) -> bool:
    """Whether `reply` mostly repeats the message it answers."""
    return Replies([message]).near(reply, ECHO)
