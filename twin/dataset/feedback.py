"""What the owner's decisions on drafts teach: preference pairs and single signals.

Every draft the owner decided says something about a reply the twin wrote for a prompt:
- edited, then sent: his final words over the draft (a pair, source "edited");
- expired because he answered the chat himself first: what he wrote over the draft
  (a pair, "answered"), the strongest signal there is;
- sent unedited: the draft was right (a desirable reply, "sent");
- discarded, or regenerated away: it was wrong (an undesirable reply, "discarded",
  "regenerated").

Nothing else becomes one: not a chat the dataset may not use (excluded, a group, a
bot), not what the twin sent by itself (auto mode: nobody judged it), not a text with a
placeholder (a reply that teaches "[PHONE]" teaches nothing good), not a stale draft
(decided more than a session gap after it was made: the conversation had moved on).
Texts are scrubbed like samples. Pairs and signals go to `<samples>.preferences.jsonl`
for the preference phase of training.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.reader import Reader
from twin.dataset.conversations import PLACEHOLDER, join_burst
from twin.dataset.pii import scrub

PAIR_SOURCES = ("edited", "answered")  # chosen over rejected
SIGNAL_SOURCES = ("sent", "discarded", "regenerated")  # one reply, desirable or not


@dataclass
class FeedbackStats:
    """What the owner's decisions gave, by source, and what was left out, by reason."""

    sources: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def pairs(self) -> int:
        return sum(self.sources[s] for s in PAIR_SOURCES)

    @property
    def signals(self) -> int:
        return sum(self.sources[s] for s in SIGNAL_SOURCES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "signals": self.signals,
            "sources": dict(sorted(self.sources.items())),
            "dropped": dict(sorted(self.dropped.items())),
        }


def preferences_path(samples: Path) -> Path:
    return samples.with_name(samples.stem + ".preferences.jsonl")


def write_feedback(
    reader: Reader, path: Path, chats: Collection[int], stale_after: int, separator: str
) -> FeedbackStats:
    """The pairs and signals of the drafts decided in `chats`, written to `path` whole
    (atomically). `stale_after`: seconds (the session gap); `separator` joins the
    messages of the owner's own answer into one reply, as a training turn is joined."""
    stats = FeedbackStats()
    rows = [
        *_decided(reader, chats, stale_after, separator, stats),
        *_regenerated(reader, chats, stats),
    ]
    partial = path.with_name(path.name + ".partial")
    partial.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    os.replace(partial, path)
    return stats


def _decided(
    reader: Reader, chats: Collection[int], stale_after: int, separator: str, stats: FeedbackStats
) -> list[dict[str, Any]]:
    rows = []
    for row in reader.decided_drafts():
        chat_id, status, via, prompt, draft, final, answered, drafted, decided = row
        if chat_id not in chats:
            stats.dropped["chat_not_used"] += 1
        elif via == "auto":
            stats.dropped["auto_sent"] += 1
        elif decided - drafted > stale_after:
            stats.dropped["stale"] += 1
        elif status == "edited_sent" and final is not None:
            rows.append(_pair("edited", chat_id, decided, prompt, final, draft, stats))
        elif status == "expired":
            burst = reader.owner_burst(chat_id, answered, drafted, stale_after)
            own = [t for t in burst if t.strip()]
            if own:
                answer = join_burst(own, separator)
                rows.append(_pair("answered", chat_id, decided, prompt, answer, draft, stats))
            else:
                stats.dropped["no_answer"] += 1  # he answered with media, or not in time
        elif status == "sent":
            rows.append(_signal("sent", chat_id, decided, prompt, draft, True, stats))
        elif status == "discarded":
            rows.append(_signal("discarded", chat_id, decided, prompt, draft, False, stats))
    return [row for row in rows if row]


def _regenerated(reader: Reader, chats: Collection[int], stats: FeedbackStats) -> list[dict]:
    rows = []
    for chat_id, prompt, text, at in reader.draft_rejections():
        if chat_id not in chats:
            stats.dropped["chat_not_used"] += 1
            continue
        rows.append(_signal("regenerated", chat_id, at, prompt, text, False, stats))
    return [row for row in rows if row]


def _pair(
    source: str,
    chat_id: int,
    date: int,
    prompt: str,
    chosen: str,
    rejected: str,
    stats: FeedbackStats,
) -> dict[str, Any]:
    chosen, rejected = scrub(chosen), scrub(rejected)
    if PLACEHOLDER.search(chosen) or PLACEHOLDER.search(rejected):
        stats.dropped["placeholder"] += 1
        return {}
    if chosen.strip() == rejected.strip():
        stats.dropped["same_text"] += 1
        return {}
    stats.sources[source] += 1
    return {
        "source": source,
        "prompt": scrub(prompt),
        "chosen": chosen,
        "rejected": rejected,
        "chat_id": chat_id,
        "date": date,
    }


def _signal(
    source: str,
    chat_id: int,
    date: int,
    prompt: str,
    reply: str,
    desirable: bool,
    stats: FeedbackStats,
) -> dict[str, Any]:
    reply = scrub(reply)
    if PLACEHOLDER.search(reply):
        stats.dropped["placeholder"] += 1
        return {}
    stats.sources[source] += 1
    return {
        "source": source,
        "prompt": scrub(prompt),
        "reply": reply,
        "desirable": desirable,
        "chat_id": chat_id,
        "date": date,
    }


def read_feedback(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
