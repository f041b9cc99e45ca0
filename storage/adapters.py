"""The `adapters` table: the registry of trained LoRA adapters.

A partial unique index allows one 'active' row, so switching is a transaction that
demotes the old one and promotes the new one together.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from storage.database import Database


@dataclass(frozen=True)
class Adapter:
    id: int
    path: str
    base_model: str
    dataset_fingerprint: str
    created: int
    status: str  # candidate, active, rejected
    val_loss: float | None
    metrics: dict[str, Any]
    reason: str | None
    run_id: int | None
    activated: int | None


_COLUMNS = (
    "id, path, base_model, dataset_fingerprint, created, status, val_loss, metrics, reason, "
    "run_id, activated"
)


def _adapter(row: tuple[Any, ...]) -> Adapter:
    return Adapter(
        *row[:7],
        metrics=json.loads(row[7] or "{}"),
        reason=row[8],
        run_id=row[9],
        activated=row[10],
    )


async def add(
    db: Database,
    path: str,
    base_model: str,
    dataset_fingerprint: str,
    val_loss: float | None,
    metrics: dict[str, Any],
    run_id: int | None,
) -> int:
    async with db.transaction():
        return await db.insert(
            "INSERT INTO adapters (path, base_model, dataset_fingerprint, created, status, "
            "val_loss, metrics, run_id) VALUES (?, ?, ?, ?, 'candidate', ?, ?, ?)",
            (
                path,
                base_model,
                dataset_fingerprint,
                int(time.time()),
                val_loss,
                json.dumps(metrics),
                run_id,
            ),
        )


async def get(db: Database, adapter_id: int) -> Adapter | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM adapters WHERE id = ?", (adapter_id,))
    return None if row is None else _adapter(row)


async def active(db: Database) -> Adapter | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM adapters WHERE status = 'active'")
    return None if row is None else _adapter(row)


async def all_adapters(db: Database) -> list[Adapter]:
    return [_adapter(r) for r in await db.fetchall(f"SELECT {_COLUMNS} FROM adapters ORDER BY id")]


async def previous_active(db: Database) -> Adapter | None:
    """The adapter that was active before the current one (for rollback)."""
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM adapters WHERE status != 'active' AND activated IS NOT NULL "
        "ORDER BY activated DESC, id DESC LIMIT 1"
    )
    return None if row is None else _adapter(row)


async def activate(db: Database, adapter_id: int, reason: str) -> None:
    """Make one adapter active; the one active before becomes a candidate again."""
    async with db.transaction():
        await db.execute("UPDATE adapters SET status = 'candidate' WHERE status = 'active'")
        await db.execute(
            "UPDATE adapters SET status = 'active', reason = ?, activated = ? WHERE id = ?",
            (reason, time.time_ns() // 1000, adapter_id),
        )


async def reject(db: Database, adapter_id: int, reason: str) -> None:
    async with db.transaction():
        await db.execute(
            "UPDATE adapters SET status = 'rejected', reason = ? WHERE id = ?", (reason, adapter_id)
        )
