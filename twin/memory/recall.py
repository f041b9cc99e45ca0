"""Recalling the owner's past exchanges for a reply.

The query is the text of the message to answer. Of its words, only those
that pick exchanges out are searched for: the rarest few the index holds, leaving out
words so common (more than `COMMON` of all exchanges) that they would rank half the
history, and stopping before the words chosen hold more than `POSTINGS` exchanges
between them (a search's work grows with them). An exchange is recalled only when its
message holds a good share of those words, the rare ones weighing most (`COVERAGE`):
a memory that shares a word by chance is noise in the prompt.

Messages are text, never query syntax: a word is letters and digits, and the index
is asked for each one quoted (storage.memory.match_expression), so quotes, `*`, `NEAR`
or `-` in a message, or a message of nothing but emoji, give fewer memories or none,
never an error. Exchanges with the same person rank higher (`SAME_CHAT`), and only
exchanges of conversations that began before the one being answered are recalled: a
sample is never shown its own reply, or anything said after it. An exchange repeated
word for word is recalled once.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

from storage.memory import ExchangeSearch
from storage.rows import ExchangeRow

_WORD = re.compile(r"[^\W_]+")  # letters and digits: what the index's tokenizer keeps
QUERY_TERMS = 12  # the rarest words of a query that are searched for
COMMON = 0.05  # a word in more than this share of the exchanges picks nothing out...
COMMON_FLOOR = 50  # ...unless it is in this few: a small history has no common words
# Exchanges the searched words may hold in all: a search ranks every one, so this bounds
# its work (1M messages: p95 29 ms at 20,000, 10 ms at 5,000; the words left out are
# the commonest of the message, those BM25 weighs least).
POSTINGS = 5_000
CACHED_FROM = 1_000  # counts this large are remembered: they cost a scan to count
# A recalled exchange's message must hold this share of the query's telling words (by
# weight): a word or two in common is a coincidence. Measured as COMMON above: on the
# sample persona, 0 recalled for 551 samples at 85.2, 0.25 for 504 at 91.9, 0.4 for 486
# at 94.2, 0.5 for 476 at 94.6; on Iago (no better than chance at any) 220, 168, 117, 96.
COVERAGE = 0.4
SAME_CHAT = 1.5  # how much more an exchange with the same person counts
POOL = 8  # exchanges ranked per one wanted, for the same-chat preference to reorder


def words(text: str) -> list[str]:
    """The distinct words of `text` as the index folds them: lower case, and accents
    taken off Latin letters (the tokenizer keeps Cyrillic й and ё as they are)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if not word.isascii():
            word = "".join(_fold(char) for char in word)
        seen.setdefault(word, None)
    return list(seen)


def _fold(char: str) -> str:
    if ord(char) >= 0x250:  # beyond the Latin blocks
        return char
    return "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))


class Recall:
    """Searches one index; knows its size for telling common words from telling ones."""

    def __init__(self, search: ExchangeSearch) -> None:
        self.search = search
        self.size = search.size()
        # How many exchanges hold a word costs a pass over the word's entries: the
        # counts of frequent words, asked for again and again, are kept. They change
        # slowly as history comes; a rare word, cheap to count, is counted every time
        # (so a new word is found as soon as it is indexed).
        self._frequent: dict[str, int] = {}

    def frequencies(self, candidates: list[str]) -> dict[str, int]:
        counts = {w: self._frequent[w] for w in candidates if w in self._frequent}
        missing = [w for w in candidates if w not in counts]
        for word, count in self.search.document_frequencies(missing).items():
            counts[word] = count
            if count >= CACHED_FROM:
                self._frequent[word] = count
        return counts

    def terms(self, texts: Sequence[str]) -> dict[str, float]:
        """The words of `texts` worth searching for, rarest first, each with its weight
        (how rare it is: ln(exchanges / exchanges holding it)): none that is common, and
        no more than POSTINGS exchanges' worth. A message of common words only ("ok",
        "how are you") picks nothing out of the history: it recalls nothing."""
        candidates = list(dict.fromkeys(w for text in texts for w in words(text)))
        limit = max(COMMON * self.size, COMMON_FLOOR)
        held = sorted((n, w) for w, n in self.frequencies(candidates).items() if 0 < n <= limit)
        terms: dict[str, float] = {}
        postings = 0
        for count, word in held[:QUERY_TERMS]:
            postings += count
            if terms and postings > POSTINGS:
                break
            terms[word] = math.log(max(self.size, count) / count) + 1e-6
        return terms

    def coverage(self, terms: dict[str, float], message: str) -> float:
        """How much of what the searched words say an exchange's message says too: the
        weight of the words it holds over the weight of them all (1: every one)."""
        held = set(words(message))
        return sum(w for term, w in terms.items() if term in held) / sum(terms.values())

    def __call__(
        self,
        texts: Sequence[str],
        k: int,
        *,
        before: int | None = None,
        chat_id: int | None = None,
        only_this_chat: bool = False,
    ) -> list[ExchangeRow]:
        """Up to `k` exchanges answering messages like `texts`, best first: from
        conversations that began before `before`; those of chat `chat_id` preferred, or
        the only ones with `only_this_chat`."""
        if not self.size:  # empty when opened: the history may have come since
            self.size = self.search.size()
        if k <= 0 or not self.size:
            return []
        terms = self.terms(texts)
        if not terms:
            return []
        found = self.search.search(
            list(terms), k * POOL, before=before, chat_id=chat_id if only_this_chat else None
        )
        related = [hit for hit in found if self.coverage(terms, hit[0].message) >= COVERAGE]
        ranked = sorted(
            related,
            key=lambda hit: -hit[1] * (SAME_CHAT if hit[0].chat_id == chat_id else 1.0),
        )
        distinct: dict[tuple[str, str], ExchangeRow] = {}
        for row, _ in ranked:  # an exchange the owner had word for word before: once
            distinct.setdefault((row.message, row.reply), row)
        return list(distinct.values())[:k]
