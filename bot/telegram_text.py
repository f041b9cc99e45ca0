"""Reply text as Telegram takes it: every message within its 4096 characters.

The reply engine knows nothing of Telegram; everything that sends a reply (the bot's
chats, the drafts the userbot sends as the owner) passes it through here first.
"""

from __future__ import annotations

TELEGRAM_LIMIT = 4096  # characters of one message's text


def fit(messages: list[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """The messages, each longer one cut into pieces Telegram accepts."""
    return [piece for message in messages for piece in split_long(message, limit)]


def split_long(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break or a space if possible."""
    pieces = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        if cut <= limit // 2:
            cut = limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces
