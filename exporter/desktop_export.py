"""Telegram Desktop's JSON export (`result.json`), read as a stream.

Both shapes tdesktop writes are understood: a single chat ("Export chat history": the
root is the chat) and the whole account ("Export Telegram data": `personal_information`
then `chats.list` and `left_chats.list`), in the formats of every tdesktop version
since 2020 (integer or "user123" `from_id`, with or without `date_unixtime`, `text` as a
string or as a list of runs). docs/telegram-export.md describes the format.

A message becomes a `storage.rows.MessageRow`, or the name of the reason it was
skipped. Anything that is not the export format raises `ExportFormatError`
with the file, the JSON path and the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from exporter.jsonstream import JsonStream, JsonSyntaxError
from exporter.peers import chat_peer_id, sender_peer_id
from storage.rows import MessageRow

_SURROGATE = re.compile("[\ud800-\udfff]")
_row = tuple.__new__  # MessageRow without the cost of its __new__: a million per import


class ExportFormatError(Exception):
    """The file is not a readable Telegram Desktop export; the message says where."""


class BadMessage(Exception):
    """A message field has the wrong type; the reader turns it into ExportFormatError."""


@dataclass(frozen=True, slots=True)
class ExportChat:
    id: int  # marked peer id
    type: str
    title: str | None


@dataclass(frozen=True, slots=True)
class ExportOwner:
    id: int
    name: str | None


def find_result_json(path: Path) -> Path:
    """Accept `result.json` itself or the export folder that holds it."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "result.json"
        if not candidate.is_file():
            raise ExportFormatError(f"{path}: no result.json in this folder (is it an export?)")
        return candidate
    if not path.exists():
        raise ExportFormatError(f"{path}: no such file or folder")
    return path


class DesktopExport:
    """One pass over an export: `chats()` yields each chat with an iterator of its raw
    message objects, which must be consumed before the next chat is asked for."""

    def __init__(self, file: BinaryIO, name: str) -> None:
        self._stream = JsonStream(file)
        self.name = name
        self.owner: ExportOwner | None = None  # set once personal_information is read
        self._where = ""  # the JSON path being read, for error messages
        self._index: int | None = None  # index of the message being read, if any

    @property
    def bytes_read(self) -> int:
        return self._stream.bytes_read

    @property
    def may_hold_lone_surrogates(self) -> bool:
        """Strings read from here on may need `repaired` (see JsonStream)."""
        return self._stream.escaped_surrogates

    def error(self, message: str, *, at_value: bool = True) -> ExportFormatError:
        """An error naming the file, the JSON path being read, and the line."""
        index = self._stream.value_start if at_value else None
        line, _ = self._stream.location(index)
        return ExportFormatError(f"{self._prefix()} (line {line}): {message}")

    def _prefix(self) -> str:
        """`name: json.path` of what is being read."""
        where = self._where if self._index is None else f"{self._where}[{self._index}]"
        return f"{self.name}: {where}" if where else self.name

    def _syntax_error(self, err: JsonSyntaxError) -> ExportFormatError:
        return ExportFormatError(f"{self._prefix()}: not valid JSON: {err}")

    def chats(self) -> Iterator[tuple[ExportChat, Iterator[dict[str, Any]]]]:
        try:
            yield from self._walk_root()
        except JsonSyntaxError as err:
            raise self._syntax_error(err) from None

    def _walk_root(self) -> Iterator[tuple[ExportChat, Iterator[dict[str, Any]]]]:
        stream = self._stream
        if stream.peek_kind() != "object":
            raise ExportFormatError(
                f"{self.name}: not a Telegram Desktop export (the document is not a JSON object)"
            )
        found = False
        chat_fields: dict[str, Any] = {}
        for key in stream.object_keys():
            if key == "personal_information":
                self._where = "personal_information"
                self.owner = self._read_owner(stream.value())
            elif key in ("chats", "left_chats"):
                found = True
                yield from self._walk_chat_list(key)
            elif key == "messages":
                found = True
                self._where = "messages"
                chat = self._chat(chat_fields)
                yield from self._yield_chat(chat, "messages")
            elif key in ("name", "type", "id"):
                self._where = key
                chat_fields[key] = stream.value()
            else:
                stream.value()  # about, contacts, sessions, ...: not needed
        stream.end()
        if not found:
            raise ExportFormatError(
                f"{self.name}: not a Telegram Desktop export (no 'messages' or 'chats' in it)"
            )

    def _walk_chat_list(self, section: str) -> Iterator[tuple[ExportChat, Iterator[dict]]]:
        stream = self._stream
        self._where = section
        if stream.peek_kind() != "object":
            raise self.error(f"'{section}' must be an object", at_value=False)
        for key in stream.object_keys():
            if key != "list":
                stream.value()
                continue
            self._where = f"{section}.list"
            if stream.peek_kind() != "array":
                raise self.error("must be an array", at_value=False)
            for index, _ in enumerate(stream.array_items()):
                where = f"{section}.list[{index}]"
                self._where = where
                if stream.peek_kind() != "object":
                    raise self.error("a chat must be an object", at_value=False)
                fields: dict[str, Any] = {}
                saw_messages = False
                for chat_key in stream.object_keys():
                    self._where = f"{where}.{chat_key}"
                    if chat_key == "messages":
                        saw_messages = True
                        chat = self._chat(fields)
                        yield from self._yield_chat(chat, f"{where}.messages")
                    else:
                        fields[chat_key] = stream.value()
                if not saw_messages:
                    self._where = where
                    self._chat(fields)  # still validate it

    def _yield_chat(
        self, chat: ExportChat, where: str
    ) -> Iterator[tuple[ExportChat, Iterator[dict]]]:
        if self._stream.peek_kind() != "array":
            raise self.error("'messages' must be an array", at_value=False)
        messages = self._messages(where)
        yield chat, messages
        for _ in messages:  # the caller stopped early: skip the rest to stay in step
            pass

    def _messages(self, where: str) -> Iterator[dict[str, Any]]:
        self._where = where
        self._index = 0
        try:
            for index, message in enumerate(self._stream.array_values()):
                self._index = index
                if message.__class__ is not dict:
                    raise self.error("a message must be an object")
                yield message
                self._index = index + 1  # an error from here on is in the next one
        except JsonSyntaxError as err:  # raised into the caller's loop, not chats()
            raise self._syntax_error(err) from None
        self._index = None

    def _chat(self, fields: dict[str, Any]) -> ExportChat:
        bare_id = fields.get("id")
        if type(bare_id) is not int:
            raise self.error("a chat needs an integer 'id' before its 'messages'")
        chat_type = fields.get("type", "")
        title = fields.get("name")
        if not isinstance(chat_type, str) or not (title is None or isinstance(title, str)):
            raise self.error("a chat's 'type' and 'name' must be strings")
        return ExportChat(chat_peer_id(chat_type, bare_id), chat_type, title)

    def _read_owner(self, info: Any) -> ExportOwner | None:
        if not isinstance(info, dict):
            raise self.error("must be an object")
        user_id = info.get("user_id")
        if user_id is None:
            return None
        if type(user_id) is not int:
            raise self.error("'user_id' must be an integer")
        names = [info.get("first_name"), info.get("last_name")]
        name = " ".join(n for n in names if isinstance(n, str) and n) or None
        return ExportOwner(user_id, name)


# -- one message -> one row ---------------------------------------------------------------

# Keys whose presence means the message carries something besides text.
_MEDIA_KEYS = frozenset(
    {
        "photo",
        "file",
        "media_type",
        "contact_information",
        "location_information",
        "place_name",
        "poll",
        "todo_list",
        "game_title",
        "invoice_information",
        "giveaway_information",
        "giveaway_results",
        "paid_stars_amount",
    }
)


def message_row(message: dict[str, Any], chat_id: int, owner_id: int | None) -> MessageRow | str:
    """The storage row of one exported message, or the reason it is skipped.

    Raises BadMessage when a field has a type the format never has.
    """
    kind = message.get("type")
    if kind != "message":
        if kind == "service" or kind == "unsupported":
            return kind
        if not isinstance(kind, str):
            raise BadMessage("'type' must be a string")
        return "unknown_type"
    message_id = message.get("id")
    if message_id.__class__ is not int:
        raise BadMessage("'id' must be an integer")

    text = message.get("text", "")
    if text.__class__ is not str:
        text = _flatten(text)
    media = detail = None
    if not _MEDIA_KEYS.isdisjoint(message):
        media, detail = _media(message)
    if not text and media is None:
        return "empty"

    try:
        sender_id = sender_peer_id(message.get("from_id"))
    except TypeError:  # unhashable, or neither a string nor an integer
        raise BadMessage("'from_id' must be a string or an integer") from None
    reply_to = message.get("reply_to_message_id")
    if reply_to is not None:
        if reply_to.__class__ is not int:
            raise BadMessage("'reply_to_message_id' must be an integer")
        if "reply_to_peer_id" in message:
            reply_to = None  # a reply to a message in another chat
    forwarded = message.get("forwarded_from", "") if "forwarded_from" in message else None
    if forwarded is not None and forwarded.__class__ is not str:
        raise BadMessage("'forwarded_from' must be a string")
    edited = None
    if "edited" in message:
        edited = _timestamp(message.get("edited_unixtime"), message["edited"], "edited")
    return _row(
        MessageRow,
        (
            chat_id,
            message_id,
            sender_id,
            sender_id is not None and sender_id == owner_id,
            _timestamp(message.get("date_unixtime"), message.get("date"), "date"),
            text,
            reply_to,
            forwarded,
            media,
            detail,
            edited,
        ),
    )


def repaired(text: str | None) -> str | None:
    """A lone surrogate (a broken emoji escape) replaced by U+FFFD: text SQLite can store."""
    if text is None or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub("\ufffd", text)


def repaired_row(row: MessageRow) -> MessageRow | None:
    """The row with its strings repaired, or None when nothing needed it."""
    fixed = [repaired(v) if v.__class__ is str else v for v in row]
    return None if fixed == list(row) else MessageRow._make(fixed)


def sender_name(message: dict[str, Any]) -> str | None:
    name = message.get("from")
    return name if isinstance(name, str) else None


def _timestamp(unixtime: Any, iso: Any, field: str) -> int:
    """Unix seconds from `<field>_unixtime`, or else from the ISO `<field>`.

    Exports before mid-2022 have only the ISO string, written in the local time of the
    exporting computer with no offset: read it in this computer's local time, the best
    guess available. A zero `_unixtime` (hand-edited exports) counts as missing.
    """
    if unixtime is not None:
        if unixtime.__class__ is str and unixtime.isdigit():
            seconds = int(unixtime)
            if seconds:
                return seconds
        elif unixtime.__class__ is int:
            if unixtime:
                return unixtime
        else:
            raise BadMessage(f"'{field}_unixtime' must be a string of digits")
    if not isinstance(iso, str):
        raise BadMessage(f"'{field}' is missing or not a string")
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        raise BadMessage(f"'{field}' is not an ISO date: {iso[:40]!r}") from None


def _flatten(text: Any) -> str:
    """The plain text a reader sees, from a list of plain runs and entity objects."""
    if text is None:
        return ""
    if text.__class__ is not list:
        raise BadMessage("'text' must be a string or a list")
    parts = []
    for part in text:
        if part.__class__ is str:
            parts.append(part)
        elif part.__class__ is dict and isinstance(part.get("text", ""), str):
            parts.append(part.get("text", ""))
        else:
            raise BadMessage("'text' parts must be strings or objects with a string 'text'")
    return "".join(parts)


def _media(message: dict[str, Any]) -> tuple[str | None, str | None]:
    """(kind, detail) of what a message carries besides text; never a file path."""
    media_type = message.get("media_type")
    if isinstance(media_type, str):
        emoji = message.get("sticker_emoji") if media_type == "sticker" else None
        return media_type, emoji if isinstance(emoji, str) else None
    if "photo" in message:
        return "photo", None
    if "file" in message:
        name = message.get("file_name")
        return "document", name if isinstance(name, str) else None
    if "poll" in message:
        poll = message["poll"]
        question = poll.get("question") if isinstance(poll, dict) else None
        if question is not None and not isinstance(question, str):
            question = _flatten(question)
        return "poll", question
    if "contact_information" in message:
        return "contact", None
    if "place_name" in message:
        return "venue", None
    if "location_information" in message:
        return "location", None
    if "todo_list" in message:
        todo = message["todo_list"]
        title = todo.get("title") if isinstance(todo, dict) else None
        return "todo", title if isinstance(title, str) else None
    if "game_title" in message:
        title = message["game_title"]
        return "game", title if isinstance(title, str) else None
    if "invoice_information" in message:
        return "invoice", None
    if "giveaway_information" in message or "giveaway_results" in message:
        return "giveaway", None
    return "paid_media", None
