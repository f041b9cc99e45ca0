"""The `settings` table: small JSON values the product learns at run time.

Not the config file: these are facts (whose account this is) and knobs the owner set
from the bot, which must survive restarts and live next to the data they describe.
"""

from __future__ import annotations

import json
from typing import Any

from storage.database import Database

OWNER_ID = "owner_id"
STYLE = "style"  # the owner's /style knobs: {"temperature": 0.9, "length": "short"}
FACTS = "facts"  # the owner's facts, set with /facts: win over memory.facts
MEMORY_RULES = "memory_rules"  # the settings the exchanges index was built by


async def get(db: Database, key: str, default: Any = None) -> Any:
    row = await db.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
    return default if row is None else json.loads(row[0])


async def put(db: Database, key: str, value: Any) -> None:
    async with db.transaction():
        await db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, ensure_ascii=False)),
        )


async def delete(db: Database, key: str) -> None:
    async with db.transaction():
        await db.execute("DELETE FROM settings WHERE key = ?", (key,))


async def set_knob(db: Database, name: str, value: Any) -> dict[str, Any]:
    """Set one /style knob (validated by the caller), keeping the others; all of them."""
    async with db.transaction():  # read and write as one: two knobs set at once both stay
        knobs = {**await get(db, STYLE, {}), name: value}
        await put(db, STYLE, knobs)
    return knobs
