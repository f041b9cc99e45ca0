"""Small Telegram Desktop exports built inside tests, and importing them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter.desktop_import import ImportReport, import_desktop_export
from storage import open_database

OWNER = 1000
T0 = 1_767_261_600  # 2026-01-01 10:00 UTC


def message(message_id: int, sender: int, text: Any = "", *, at: int, **extra: Any) -> dict:
    """A tdesktop message `at` seconds after T0, in the writer's key order."""
    date = T0 + at
    return {
        "id": message_id,
        "type": "message",
        "date": datetime.fromtimestamp(date).isoformat(),
        "date_unixtime": str(date),
        "from": "Me" if sender == OWNER else f"User {sender}",
        "from_id": f"user{sender}",
        **extra,
        "text": text,
    }


def dialogue(peer: int, lines: list[tuple[int, str]], step: int = 60) -> list[dict]:
    """Messages from (seconds after T0, 'me: text' or 'them: text') pairs."""
    out = []
    for index, (at, line) in enumerate(lines, start=1):
        who, _, text = line.partition(": ")
        out.append(message(index, OWNER if who == "me" else peer, text, at=at))
    return out


def chat(
    chat_id: int, messages: list[dict], chat_type: str = "personal_chat", name: str = ""
) -> dict:
    return {
        "name": name or f"Chat {chat_id}",
        "type": chat_type,
        "id": chat_id,
        "messages": messages,
    }


def full_export(chats: list[dict]) -> dict:
    return {
        "personal_information": {"user_id": OWNER, "first_name": "Me"},
        "chats": {"about": "", "list": chats},
    }


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


async def import_into(db_path: Path, export: dict | Path, **kwargs: Any) -> ImportReport:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(export, dict):
        export = write_json(db_path.with_name(f"{db_path.stem}-export.json"), export)
    async with open_database(db_path) as db:
        return await import_desktop_export(db, export, **kwargs)


# -- the project's own exports in the shapes real ones have -----------------------------
# Written for twin: every field kind an export carries, so that a clone with nothing
# beside it tests every import path.

PEER = 6660002  # Vera, the other side of the all-fields chat


def _at(message_id: int, sender: int, at: int, **fields: Any) -> dict:
    """A message with the fields of a real export, `text` last as tdesktop writes it."""
    text = fields.pop("text", "")
    return message(message_id, sender, text, at=at, **fields)


def all_fields_chat(owner: int = 6660001) -> dict:
    """A single-chat export of a personal chat: text runs, a cross-chat reply, a
    forward, an edit, every media kind, service and unsupported messages."""
    me, vera = owner, PEER
    runs = [
        "Hello ",
        {"type": "bold", "text": "you"},
        " and ",
        {"type": "mention", "text": "@vera"},
    ]
    messages = [
        _at(1, me, 0, text=runs, text_entities=[{"type": "plain", "text": "Hello "}]),
        _at(
            2,
            vera,
            60,
            edited="2026-01-01T10:03:00",
            edited_unixtime=str(T0 + 180),
            reply_to_message_id=1,
            reply_to_peer_id=f"user{me}",
            forwarded_from="Evening News",
            text="forwarded and edited",
        ),
        _at(3, vera, 120, photo="photos/photo_1.jpg", width=800, height=600, text="a photo"),
        _at(4, me, 180, file="files/s.webp", media_type="sticker", sticker_emoji="🙂"),
        _at(5, me, 240, file="files/r.mp4", media_type="video_message", duration_seconds=9),
        _at(6, vera, 300, file="files/v.ogg", media_type="voice_message", duration_seconds=4),
        _at(7, me, 360, file="files/a.gif", media_type="animation"),
        _at(8, me, 420, file="files/clip.mp4", media_type="video_file"),
        _at(9, vera, 480, file="files/song.mp3", media_type="audio_file", title="Song"),
        _at(10, vera, 540, contact_information={"first_name": "Oleg", "phone_number": "+1"}),
        _at(11, vera, 600, location_information={"latitude": 1.5, "longitude": 2.5}),
        _at(12, me, 660, place_name="Cafe", address="Street 1", text=""),
        _at(13, me, 720, poll={"question": "Tea or coffee?", "answers": []}),
        _at(14, me, 780, file="(File not included.)", file_name="notes.pdf", text=""),
        {"id": 15, "type": "unsupported"},
        {
            "id": 16,
            "type": "service",
            "date": "2026-01-01T10:20:00",
            "date_unixtime": str(T0 + 1200),
            "actor": "Vera",
            "actor_id": f"user{vera}",
            "action": "phone_call",
            "text": "",
        },
        _at(17, vera, 1260, text="last words"),
    ]
    return chat(vera, messages, name="Vera")


def group_chat() -> dict:
    """A single-chat export of a basic group: it names nobody as the owner."""
    messages = [
        message(1, 7001, "who is in?", at=0),
        message(2, 7002, "me", at=60),
        message(3, 7003, "me too", at=120),
        message(4, 7002, "and me again", at=180),
    ]
    return chat(4401, messages, chat_type="private_group", name="Friends")


def legacy_channel() -> dict:
    """A 2020 export of a private channel: bare ids, no date_unixtime, plain text."""
    posts = [
        {"id": i, "type": "message", "date": f"2020-05-0{i}T12:00:00", "text": f"post {i}"}
        for i in range(1, 4)
    ]
    return chat(1292000001, posts, chat_type="private_channel", name="Old Channel")


def repeated_ids_chat() -> dict:
    """A hand-edited export where every message got the same id."""
    messages = [message(69, 7001 if i % 2 else OWNER, f"copy {i}", at=i * 60) for i in range(5)]
    return chat(69, messages, chat_type="private_group", name="Edited by hand")
