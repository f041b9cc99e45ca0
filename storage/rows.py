"""The rows that travel between the rooms: a stored message, and a message as the
history a reply or a sample is built from.

NamedTuples: SQLite takes them as they are, unpacking them costs what a tuple costs,
and every reader outside storage uses the names. An importer that makes a million of
them builds each with `tuple.__new__(MessageRow, values)`, a quarter of the cost of
calling the class.
"""

from __future__ import annotations

from typing import NamedTuple


class MessageRow(NamedTuple):
    """One row of the `messages` table."""

    chat_id: int  # marked peer id (exporter.peers)
    message_id: int
    sender_id: int | None
    is_owner: bool
    date: int  # unix seconds
    text: str
    reply_to: int | None
    forwarded_from: str | None  # the original sender's name; "" when hidden
    media: str | None  # photo, sticker, voice_message, ...
    media_detail: str | None  # a sticker's emoji, a poll's question, a file's name
    edited: int | None  # unix seconds of the last real edit


class HistoryRow(NamedTuple):
    """A message as conversation history: who said what, when. The bot's own chats
    give rows of the same shape, with the twin as the owner."""

    sender_id: int | None
    is_owner: bool
    date: int
    text: str
    media: str | None = None
    media_detail: str | None = None


class ExchangeRow(NamedTuple):
    """Something said to the owner and the owner's reply to it, from their history:
    what the twin recalls when a similar message comes (the memory room). Its text is
    scrubbed of personal data exactly as training text is."""

    chat_id: int
    conversation: int  # unix seconds of the first message of its conversation
    date: int  # of the reply
    message: str  # the other person's turn
    reply: str  # the owner's turn
