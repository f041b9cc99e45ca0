"""Synthetic Telegram Desktop exports of any size, for tests and benchmarks.

The messages look like tdesktop's output (one-space indentation, the key order of the
writer, text as plain strings or lists of entity runs, media, replies, edits, service
messages), so that a parser is timed on realistic bytes. The file is written as a
stream: a million messages never sit in memory at once.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

OWNER_ID = 100_000_001
OWNER_NAME = "Synthetic Owner"

_WORDS = [
    *("hello", "привет", "yes", "no", "maybe", "сегодня", "tomorrow", "ok", "окей", "lol"),
    *("круто", "кофе", "coffee", "meeting", "встреча", "работа", "work", "later", "потом"),
    *("sure", "конечно", "thanks", "спасибо", "haha", "ахах", "что", "what", "why"),
    *("почему", "дома", "home", "train", "поезд", "weekend", "выходные", "movie", "фильм"),
]
_EMOJI = ["😂", "👍", "🙂", "🔥", "❤️", "🤔"]


_SYLLABLES = (
    ["ка", "ло", "ми", "ра", "сто", "ве", "ну", "ор", "кот", "пе", "ку", "зо", "ли", "ги"],
    ["en", "or", "ti", "la", "ve", "mo", "ber", "sa", "da", "ri", "ton", "ke", "lu", "an"],
)


class Vocabulary:
    """`size` words drawn as people's words are (Zipf: the n-th most frequent word
    comes about 1/n as often as the first): the everyday words above, then made-up
    ones, so that most words of a message are rare across a history."""

    def __init__(self, size: int) -> None:
        made = random.Random(size)
        seen = dict.fromkeys(_WORDS)
        while len(seen) < size:
            script = made.choice(_SYLLABLES)
            seen.setdefault("".join(made.choices(script, k=made.randint(2, 4))))
        self.words = list(seen)
        self.cumulative = list(itertools.accumulate(1 / rank for rank in range(1, size + 1)))

    def choose(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cumulative, k=count)


def _text(rng: random.Random, vocabulary: Vocabulary | None = None) -> str:
    count = rng.randint(1, 14)
    words = vocabulary.choose(rng, count) if vocabulary else rng.choices(_WORDS, k=count)
    text = " ".join(words)
    if rng.random() < 0.2:
        text += " " + rng.choice(_EMOJI)
    roll = rng.random()
    if roll < 0.005:  # now and then something the dataset must scrub
        text += f" +7 921 555-{rng.randint(10, 99)}-{rng.randint(10, 99)}"
    elif roll < 0.01:
        text += f" friend{rng.randint(1, 999)}@mail.example"
    elif roll < 0.05:
        text += f" в {rng.randint(10, 23)}:{rng.randint(10, 59)}"
    return text


def _message(
    rng: random.Random,
    message_id: int,
    date: int,
    peer_id: int,
    peer_name: str,
    vocabulary: Vocabulary | None,
) -> dict:
    mine = rng.random() < 0.5
    sender_id, sender = (OWNER_ID, OWNER_NAME) if mine else (peer_id, peer_name)
    iso = datetime.fromtimestamp(date).isoformat()
    roll = rng.random()
    if roll < 0.01:
        return {
            "id": message_id,
            "type": "service",
            "date": iso,
            "date_unixtime": str(date),
            "actor": sender,
            "actor_id": f"user{sender_id}",
            "action": "phone_call",
            "duration_seconds": rng.randint(5, 600),
            "text": "",
            "text_entities": [],
        }
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "date": iso,
        "date_unixtime": str(date),
    }
    if rng.random() < 0.05:
        message["edited"] = iso
        message["edited_unixtime"] = str(date + 30)
    message["from"] = sender
    message["from_id"] = f"user{sender_id}"
    if message_id > 1 and rng.random() < 0.1:
        message["reply_to_message_id"] = rng.randint(1, message_id - 1)
    if roll < 0.05:
        message.update(
            {
                "file": "(File not included. Change data exporting settings to download.)",
                "file_size": 20480,
                "thumbnail": "(File not included. Change data exporting settings to download.)",
                "media_type": "sticker",
                "sticker_emoji": rng.choice(_EMOJI),
                "width": 512,
                "height": 512,
                "text": "",
                "text_entities": [],
            }
        )
        return message
    if roll < 0.08:
        message.update(
            {
                "photo": "(File not included. Change data exporting settings to download.)",
                "photo_file_size": 90000,
                "width": 1280,
                "height": 960,
            }
        )
    text = _text(rng, vocabulary)
    if roll > 0.9:
        head, _, tail = text.partition(" ")
        message["text"] = [{"type": "bold", "text": head}, " " + tail] if tail else text
        message["text_entities"] = [{"type": "bold", "text": head}] + (
            [{"type": "plain", "text": " " + tail}] if tail else []
        )
    else:
        message["text"] = text
        message["text_entities"] = [{"type": "plain", "text": text}]
    return message


def _chat_messages(
    rng: random.Random,
    count: int,
    peer_id: int,
    peer_name: str,
    start: int,
    vocabulary: Vocabulary | None,
) -> Iterator[dict]:
    date = start
    for message_id in range(1, count + 1):
        date += rng.choice((5, 20, 60, 300, 3600, 90_000))
        yield _message(rng, message_id, date, peer_id, peer_name, vocabulary)


def _dump(value: Any, indent: int) -> str:
    """One value as tdesktop indents it (one space per level), starting at `indent`."""
    text = json.dumps(value, ensure_ascii=False, indent=1)
    return text.replace("\n", "\n" + " " * indent)


def write_export(
    path: Path,
    messages: int,
    chats: int = 20,
    seed: int = 0,
    start: int = 1_600_000_000,
    vocabulary: int = 0,
) -> Path:
    """Write a full-account export of `messages` messages across `chats` personal chats,
    their words from the few everyday ones above or (`vocabulary` > 0) a Vocabulary."""
    rng = random.Random(seed)
    words = Vocabulary(vocabulary) if vocabulary else None
    per_chat = [messages // chats + (1 if i < messages % chats else 0) for i in range(chats)]
    with Path(path).open("w", encoding="utf-8") as out:
        _write_header(out)
        out.write(
            ' "chats": {\n  "about": "This page lists all chats from this export.",\n  "list": ['
        )
        for index, count in enumerate(per_chat):
            peer_id = 200_000_000 + index
            peer_name = f"Friend {index}"
            out.write(",\n   {" if index else "\n   {")
            out.write(f'\n    "name": {json.dumps(peer_name)},\n    "type": "personal_chat",')
            out.write(f'\n    "id": {peer_id},\n    "messages": [')
            for n, message in enumerate(
                _chat_messages(rng, count, peer_id, peer_name, start, words)
            ):
                out.write(",\n     " if n else "\n     ")
                out.write(_dump(message, 5))
            out.write("\n    ]\n   }")
        out.write("\n  ]\n }\n}\n")
    return Path(path)


def _write_header(out: TextIO) -> None:
    out.write("{\n")
    out.write(' "about": "Here is the data you requested.",\n')
    info = {
        "user_id": OWNER_ID,
        "first_name": "Synthetic",
        "last_name": "Owner",
        "phone_number": "+1 555 000 0000",
        "bio": "",
    }
    out.write(f' "personal_information": {_dump(info, 1)},\n')
