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
