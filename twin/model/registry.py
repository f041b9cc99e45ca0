"""The adapter registry: trained adapters on disk, and which one is active.

An adapter is a folder with the LoRA weights (`adapter.pth`) and `meta.json` (base
model, dataset fingerprint, settings, metrics), written to a temporary folder and
renamed whole, then recorded in the database: a crash mid-save leaves no half adapter
registered. A candidate becomes active only if its validation loss is not worse than
the active adapter's on the same validation set, recomputed, not copied; without an
active adapter, the bar is the base model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import Database
from storage import adapters as adapters_table
from storage.adapters import Adapter

if TYPE_CHECKING:  # torch takes seconds to load; listing adapters needs none of it
    import torch

WEIGHTS = "adapter.pth"
META = "meta.json"


class RegistryError(Exception):
    """An adapter cannot be found or switched to; the message says why."""


def save(adapters_dir: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write an adapter folder atomically; returns its final path."""
    import torch

    adapters_dir.mkdir(parents=True, exist_ok=True)
    name = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=adapters_dir))
    try:
        torch.save(state, work / WEIGHTS)
        (work / META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        final, copy = adapters_dir / name, 1
        while final.exists():  # two adapters saved within one second
            copy += 1
            final = adapters_dir / f"{name}-{copy}"
        os.rename(work, final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        return torch.load(Path(path) / WEIGHTS, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise RegistryError(f"adapter folder {path} has no {WEIGHTS}") from None


def read_meta(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / META).read_text(encoding="utf-8"))


async def register(
    db: Database, path: Path, meta: dict[str, Any], run_id: int | None, val_loss: float
) -> int:
    return await adapters_table.add(
        db,
        str(path),
        meta["base_model"],
        meta["dataset_fingerprint"],
        val_loss,
        meta.get("metrics", {}),
        run_id,
    )


@dataclass
class Decision:
    promoted: bool
    reason: str
    candidate_loss: float
    reference_loss: float
    reference: str  # "adapter N" or "base model"


async def decide(
    db: Database,
    candidate_id: int,
    candidate_loss: float,
    reference_loss: float,
    reference: str,
    unchanged: str | None = None,
) -> Decision:
    """Promote the candidate if its validation loss is not worse than the reference's,
    unless it is the reference itself (`unchanged` says why: a run that began from the
    active adapter and kept it)."""
    if unchanged is not None:
        await adapters_table.reject(db, candidate_id, unchanged)
        return Decision(False, unchanged, candidate_loss, reference_loss, reference)
    if candidate_loss <= reference_loss:
        reason = (
            f"validation loss {candidate_loss:.4f} is not worse than {reference}'s "
            f"{reference_loss:.4f}"
        )
        await adapters_table.activate(db, candidate_id, reason)
        return Decision(True, reason, candidate_loss, reference_loss, reference)
    reason = (
        f"validation loss {candidate_loss:.4f} is worse than {reference}'s {reference_loss:.4f}"
    )
    await adapters_table.reject(db, candidate_id, reason)
    return Decision(False, reason, candidate_loss, reference_loss, reference)


async def active_for(db: Database, base_model: str) -> Adapter | None:
    """The active adapter, if it was trained on this base model (else it cannot apply)."""
    active = await adapters_table.active(db)
    return active if active is not None and active.base_model == base_model else None


async def chosen(db: Database, adapter_id: int | None) -> Adapter:
    """Adapter `adapter_id`, or the active one when it is None: what a command works on."""
    adapter = (
        await adapters_table.get(db, adapter_id)
        if adapter_id is not None
        else await adapters_table.active(db)
    )
    if adapter is None:
        raise RegistryError(
            f"no adapter {adapter_id} (see: twin adapters)"
            if adapter_id is not None
            else "no active adapter yet: run twin train"
        )
    return adapter


def require_base(adapter: Adapter, base_model: str) -> dict[str, Any]:
    """The adapter's meta, once it is known to fit `base_model` (the configured one)."""
    meta = read_meta(Path(adapter.path))
    if meta["base_model"] != base_model:
        raise RegistryError(
            f"adapter {adapter.id} was trained on {meta['base_model']}, but model.checkpoint "
            f"is {base_model}"
        )
    return meta


async def activate(db: Database, adapter_id: int) -> Adapter:
    adapter = await adapters_table.get(db, adapter_id)
    if adapter is None:
        raise RegistryError(f"no adapter {adapter_id} (see: twin adapters)")
    if not (Path(adapter.path) / WEIGHTS).is_file():
        raise RegistryError(f"adapter {adapter_id}'s folder {adapter.path} is gone")
    await adapters_table.activate(db, adapter_id, "activated by hand")
    return adapter


async def rollback(db: Database) -> Adapter:
    """Back to the adapter that was active before the current one."""
    previous = await adapters_table.previous_active(db)
    if previous is None:
        raise RegistryError("nothing to roll back to: no adapter was active before this one")
    return await activate(db, previous.id)
