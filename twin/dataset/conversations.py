"""A chat's messages become conversations of turns.

A conversation ends after a silence longer than the session gap. Consecutive messages
of one sender merge into one turn, joined by the prompt's burst separator (so a reply
can be split back into messages). Media become short placeholders, never file paths,
and personal data is scrubbed before any text leaves this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from storage.rows import HistoryRow
from twin.dataset.pii import ScrubStats, may_hold, scrub


@dataclass(slots=True)
class Turn:
    is_owner: bool
    text: str
    date: int  # of the turn's first message
    media_only: bool  # nothing but media without text (a photo, a voice message)


_MEDIA = {
    "photo": "[photo]",
    "voice_message": "[voice message]",
    "video_message": "[video message]",
    "video_file": "[video]",
    "animation": "[GIF]",
    "audio_file": "[audio]",
    "document": "[file]",
    "contact": "[contact]",
    "location": "[location]",
    "venue": "[location]",
    "game": "[game]",
    "invoice": "[invoice]",
    "giveaway": "[giveaway]",
    "todo": "[to-do list]",
    "paid_media": "[paid media]",
}


def message_text(text: str, media: str | None, detail: str | None) -> str:
    """What a message says, with its media as a short placeholder."""
    if media is None:
        return text
    if media == "sticker":
        placeholder = f"[sticker {detail}]" if detail else "[sticker]"
    elif media == "poll":
        placeholder = f"[poll: {detail}]" if detail else "[poll]"
    else:
        placeholder = _MEDIA.get(media, f"[{media}]")
    return f"{placeholder} {text}" if text else placeholder


# Any placeholder: a media one (message_text's) or a typed one of personal data (scrub's).
PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,60}\]")
_STICKER = re.compile(r"^\[sticker ?([^\]]*)\]$")
# A message's leading media placeholder (message_text's own), as a model writes it back.
_LEADING_MEDIA = re.compile(
    r"^(?:"
    + "|".join(re.escape(p) for p in sorted(set(_MEDIA.values()), key=len, reverse=True))
    + r")\s*"
)


def sendable_text(part: str) -> str:
    """A generated message as text that can be sent: a sticker placeholder becomes its
    emoji, a media placeholder goes (the twin has no photo to send). Empty: nothing."""
    sticker = _STICKER.match(part)
    return sticker.group(1).strip() if sticker else _LEADING_MEDIA.sub("", part).strip()


def join_burst(messages: list[str], separator: str) -> str:
    """One turn from the messages of a burst. A separator inside a message would split
    it when a reply is sent (twin.prompt.text.Prompt.split_burst), so it becomes a space."""
    if len(messages) == 1:  # most turns: one message
        return messages[0].replace(separator, " ").strip()
    return separator.join([m.replace(separator, " ").strip() for m in messages])


def conversation_turns(
    rows: Iterable[HistoryRow], gap: int, separator: str, pii: ScrubStats
) -> Iterator[list[Turn]]:
    """Split one chat's rows, in message order, into conversations of merged, scrubbed
    turns (a burst's messages joined by `separator`, the prompt's burst_separator)."""
    turns: list[Turn] = []
    burst: list[str] = []
    might_be_pii = may_hold

    def turn() -> Turn:
        # The joined turn is scrubbed, not each message: a card number typed over two
        # messages is one number. A poll's question or a caption is scrubbed too.
        text = join_burst(burst, separator)
        if might_be_pii(text):
            text = scrub(text, pii)
        return Turn(owner, text, start, media_only)

    sender = None
    owner = media_only = False
    start = last = 0
    for sender_id, is_owner, date, text, media, detail in rows:
        if burst and (sender_id != sender or date - last > gap):
            turns.append(turn())
            burst = []
            if date - last > gap:
                yield turns
                turns = []
        if not burst:
            sender, owner, start, media_only = sender_id, bool(is_owner), date, True
        if media is None:
            burst.append(text)
            media_only = False
        else:
            burst.append(message_text(text, media, detail))
            media_only = media_only and not text and media != "sticker"
        last = date
    if burst:
        turns.append(turn())
        yield turns


def conversation_starts(dates: Iterable[int], gap: int) -> list[int]:
    """Indexes of the messages that open a conversation, from the dates of a chat's
    messages in order, by the same rule as conversation_turns."""
    starts = []
    last = None
    for index, date in enumerate(dates):
        if last is None or date - last > gap:
            starts.append(index)
        last = date
    return starts
