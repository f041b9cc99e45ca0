"""Telegram peer ids as twin stores them.

Telegram has three id spaces (users, basic groups, channels/supergroups) whose numbers
can collide. Desktop exports write bare numbers; Telethon writes "marked" ids that keep
the spaces apart (user N -> N, basic group N -> -N, channel N -> -100N as a decimal
prefix). twin stores marked ids, so a chat imported from an export and the same chat
seen later by the userbot are one row.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

CHANNEL_OFFSET = 1_000_000_000_000  # -100N == -(CHANNEL_OFFSET + N)
# Ids Telegram never issues (above 2**53): used for senders an export names in a way
# that is not a number (hand-edited exports do this), so each keeps a stable identity.
_SYNTHETIC_BASE = 1 << 53

_CHANNEL_CHAT_TYPES = frozenset(
    {"private_supergroup", "public_supergroup", "private_channel", "public_channel"}
)


def chat_peer_id(chat_type: str, bare_id: int) -> int:
    """The marked id of an exported chat, from its `type` and bare `id`."""
    if chat_type in _CHANNEL_CHAT_TYPES:
        return -(CHANNEL_OFFSET + bare_id)
    if chat_type == "private_group":
        return -bare_id
    return bare_id


@lru_cache(maxsize=4096, typed=True)  # a chat has few senders; this runs once per message
def sender_peer_id(from_id: object) -> int | None:
    """The marked id of a message's `from_id`: "user1", "channel1", "chat1", or (before
    2021) a bare integer, which was always a user."""
    if from_id is None:
        return None
    if type(from_id) is int:
        return from_id
    if isinstance(from_id, str):
        for prefix, sign, offset in (
            ("user", 1, 0),
            ("channel", -1, CHANNEL_OFFSET),
            ("chat", -1, 0),
        ):
            if from_id.startswith(prefix):
                digits = from_id[len(prefix) :]
                if digits.isdigit() and digits.isascii():
                    return sign * (offset + int(digits))
                break
        return _SYNTHETIC_BASE + zlib.crc32(from_id.encode())
    raise TypeError(f"'from_id' must be a string or an integer, not {type(from_id).__name__}")
