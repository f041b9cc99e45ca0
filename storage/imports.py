"""The `imports` table: a log of every import, for /status and for debugging."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True, slots=True)
class ImportRecord:
    source: str
    path: str | None
    started: int
    finished: int
    chats: int
    new: int
    updated: int
    duplicates: int
    skipped: Mapping[str, int]


async def record(db: Database, rec: ImportRecord) -> int:
    return await db.insert(
        "INSERT INTO imports (source, path, started, finished, chats, new, updated, "
        "duplicates, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.source,
            rec.path,
            rec.started,
            rec.finished,
            rec.chats,
            rec.new,
            rec.updated,
            rec.duplicates,
            json.dumps(dict(rec.skipped), sort_keys=True),
        ),
    )


async def last(db: Database) -> ImportRecord | None:
    row = await db.fetchone(
        "SELECT source, path, started, finished, chats, new, updated, duplicates, skipped "
        "FROM imports ORDER BY id DESC LIMIT 1"
    )
    if row is None:
        return None
    return ImportRecord(*row[:8], skipped=json.loads(row[8]))
