"""`twin import`: a Telegram Desktop export into the database, whole or not at all.

The file is streamed (memory does not grow with it): rows go to a staging file in
batches while the next batch is parsed, with no lock on the database, and then join it
in one short transaction. Any error, from a truncated file to an unknown owner, leaves
the database as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from exporter import ingest
from exporter.desktop_export import (
    BadMessage,
    DesktopExport,
    ExportChat,
    ExportFormatError,
    find_result_json,
    message_row,
    repaired,
    repaired_row,
    sender_name,
)
from exporter.ingest import OwnerError
from storage import Database
from storage import chats as chats_table
from storage import messages as messages_table
from storage import people as people_table
from storage import staging as staging_table
from storage.rows import MessageRow

BATCH = 10_000


@dataclass
class ImportReport:
    path: str
    owner_id: int | None = None
    chats: int = 0
    messages: int = 0  # message objects that carry a message (not service ones)
    new: int = 0
    updated: int = 0  # stored before, replaced by a newer edit
    duplicates: int = 0  # stored before, unchanged
    repaired: int = 0  # broken characters (lone surrogates) replaced by U+FFFD
    skipped: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


async def import_desktop_export(
    db: Database,
    path: Path,
    *,
    owner_id: int | None = None,
    dry_run: bool = False,
    progress: bool = False,
) -> ImportReport:
    """Import `path` (result.json or its folder). `owner_id` is the user's explicit say
    (--me or the config); without it the export's personal_information, the owner
    already stored, or the other side of a personal chat decides.

    The rows are parsed into a staging file first, with no lock on the database; one
    short transaction then merges them and everything else the import writes, so the
    import is whole or nothing while other writers wait seconds at most."""
    result_json = find_result_json(path)
    report = ImportReport(path=str(result_json), dry_run=dry_run)
    started = time.time()
    async with staging_table.staging(db) as staged:
        parsed = await _parse(db, staged, result_json, owner_id, report, progress)
        owner = await _decide_owner(parsed, staged, result_json)
        report.owner_id = owner
        async with staging_table.attached(db, staged):
            try:
                async with db.transaction():
                    await _merge(db, parsed, owner, report, result_json.name)
                    report.seconds = round(time.time() - started, 3)
                    if dry_run:
                        raise _DryRun
                    await ingest.record(
                        db,
                        "desktop_export",
                        str(result_json.resolve()),
                        started,
                        report.chats,
                        report.new,
                        report.updated,
                        report.duplicates,
                        report.skipped,
                    )
            except _DryRun:
                pass
    return report


@dataclass
class _Parsed:
    """What reading the export found, beside the rows it staged."""

    chats: list[ExportChat] = field(default_factory=list)
    names: dict[int, str | None] = field(default_factory=dict)
    senders: dict[int, set[int | None]] = field(default_factory=dict)  # by chat
    owner: int | None = None  # known while reading (--me, the database, the export)
    stored_owner: int | None = None


async def _parse(
    db: Database,
    staged: staging_table.Staging,
    path: Path,
    explicit_owner: int | None,
    report: ImportReport,
    progress: bool,
) -> _Parsed:
    """Read the export into the staging file; nothing of the database is written."""
    parsed = _Parsed(stored_owner=await ingest.stored_owner(db))
    stored_owner = parsed.stored_owner
    if None not in (stored_owner, explicit_owner) and stored_owner != explicit_owner:
        raise OwnerError(
            ingest.owner_mismatch(stored_owner, explicit_owner, "--me / telegram.owner_id")
        )
    owner = explicit_owner if explicit_owner is not None else stored_owner
    skipped: Counter[str] = Counter()
    names = parsed.names
    writer = _BatchWriter(staged, report)
    bar = tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc="import",
        disable=not progress,
        leave=False,
    )
    async with writer.aborted_on_error():
        with path.open("rb") as file, bar:
            export = DesktopExport(file, path.name)
            for chat, messages in export.chats():
                if export.owner is not None and owner != export.owner.id:
                    if explicit_owner is not None:
                        raise OwnerError(
                            f"{path.name} is the export of user {export.owner.id}, "
                            f"but --me / telegram.owner_id says {explicit_owner}"
                        )
                    if stored_owner is not None:
                        raise OwnerError(
                            ingest.owner_mismatch(stored_owner, export.owner.id, path.name)
                        )
                    owner = export.owner.id
                parsed.chats.append(chat)
                chat_id = chat.id
                senders = parsed.senders.setdefault(chat_id, set())
                last_id = None
                batch = writer.batch
                for message in messages:
                    try:
                        row = message_row(message, chat_id, owner)
                    except BadMessage as err:
                        raise export.error(str(err)) from None
                    if row.__class__ is str:
                        skipped[row] += 1
                        continue
                    if export.may_hold_lone_surrogates and (fixed := repaired_row(row)):
                        row = fixed
                        report.repaired += 1
                    # tdesktop writes ids in ascending order; a repeat only happens in
                    # hand-edited files, where the first message with an id is kept.
                    if last_id is not None and row.message_id <= last_id:
                        skipped["repeated_id"] += 1
                        continue
                    last_id = row.message_id
                    senders.add(row.sender_id)
                    names[row.sender_id] = sender_name(message)
                    batch.append(row)
                    if len(batch) >= BATCH:
                        await writer.flush()
                        batch = writer.batch
                        bar.update(export.bytes_read - bar.n)
                        bar.set_postfix(messages=report.messages + len(batch), refresh=False)
            await writer.close()
            bar.update(export.bytes_read - bar.n)
            if export.may_hold_lone_surrogates:
                parsed.chats = [replace(c, title=repaired(c.title)) for c in parsed.chats]
                parsed.names = {k: repaired(v) for k, v in names.items()}
    report.chats = len(parsed.chats)
    report.skipped = dict(sorted(skipped.items()))
    parsed.owner = owner
    return parsed


async def _decide_owner(parsed: _Parsed, staged: staging_table.Staging, path: Path) -> int:
    """The owner, inferred from the personal chats when nothing named them, and checked
    against every personal chat's senders."""
    personal = {c.id: parsed.senders[c.id] for c in parsed.chats if c.type == "personal_chat"}
    owner = parsed.owner
    if owner is None:
        owner = _infer_owner(personal)
        if owner is None:
            counts = await staged.sender_counts()
            raise OwnerError(_unknown_owner_message(counts, parsed.names, path))
    _check_owner_in_personal_chats(owner, personal, path)
    return owner


async def _merge(
    db: Database, parsed: _Parsed, owner: int, report: ImportReport, source: str
) -> None:
    """Everything the import writes, inside its one transaction."""
    report.new, report.updated = await staging_table.merge(db)
    report.duplicates = report.messages - report.new - report.updated
    for chat in parsed.chats:
        await chats_table.upsert(db, chats_table.Chat(chat.id, chat.type, chat.title))
    if parsed.owner is None:  # inferred after the rows were read: mark theirs now
        await messages_table.mark_owner(db, owner, [c.id for c in parsed.chats])
    await ingest.claim_owner(db, owner, source)
    names = {k: v for k, v in parsed.names.items() if k is not None and v}
    await people_table.upsert_names(db, names)


class _BatchWriter:
    """Hands one batch to the staging file's writer while the caller parses the next."""

    def __init__(self, staged: staging_table.Staging, report: ImportReport) -> None:
        self.staged = staged
        self.report = report
        self.batch: list[MessageRow] = []
        self._pending: asyncio.Task[None] | None = None

    async def flush(self) -> None:
        await self._wait()
        rows, self.batch = self.batch, []
        if rows:
            self._pending = asyncio.ensure_future(self._write(rows))
            await asyncio.sleep(0)  # let the task hand the rows to the SQLite thread

    async def close(self) -> None:
        await self.flush()
        await self._wait()
        await self.staged.finish()

    @contextlib.asynccontextmanager
    async def aborted_on_error(self) -> AsyncIterator[None]:
        try:
            yield
        except BaseException:
            await self.abort()
            raise

    async def abort(self) -> None:
        """Stop the write in flight and wait for it: its error, if any, is part of the
        failure already being reported, not a second one printed later."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending

    async def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def _write(self, rows: list[MessageRow]) -> None:
        self.report.messages += len(rows)
        await self.staged.add(rows)


def _infer_owner(personal: dict[int, set[int | None]]) -> int | None:
    """In a personal chat the owner is whoever is not the peer (whose id is the chat's)."""
    candidates = {s for chat_id, senders in personal.items() for s in senders if s != chat_id}
    candidates.discard(None)
    return candidates.pop() if len(candidates) == 1 else None


def _check_owner_in_personal_chats(
    owner: int, personal: dict[int, set[int | None]], path: Path
) -> None:
    """A personal chat has two people: its peer and the owner. A third sender means the
    export is someone else's chat, and importing it would teach the twin their voice."""
    for chat_id, senders in personal.items():
        strangers = senders - {chat_id, owner, None}
        if strangers:
            raise OwnerError(
                f"{path.name}: personal chat {chat_id} has messages from {sorted(strangers)[0]}, "
                f"who is neither the chat's peer nor you ({owner}); is this another "
                "account's export? (pass --me ID, or use another --db)"
            )


def _unknown_owner_message(counts: dict[int, int], names: dict[int, str | None], path: Path) -> str:
    listed = ", ".join(
        f"{sender_id} ({names.get(sender_id) or 'unnamed'}: "
        f"{count} message{'' if count == 1 else 's'})"
        for sender_id, count in list(counts.items())[:10]
    )
    return (
        f"{path.name}: cannot tell which sender is you; pass --me ID "
        f"(or set telegram.owner_id). Senders: {listed or 'none'}"
    )


__all__ = ["ExportFormatError", "ImportReport", "OwnerError", "import_desktop_export"]
