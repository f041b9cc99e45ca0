"""`twin sync`: the owner's private chats from Telegram into the database, incrementally.

Each chat is read from the newest message down to its high-water mark (what an earlier
sync or import stored). Rows are written in batches as they come (a repeated row is
ignored), and the mark moves only when a chat is complete: an interrupted sync loses
nothing and the next one picks up where it stopped. Telegram's short flood waits are
slept through; a long one is recorded, and `twin sync` says when to come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from telethon import TelegramClient, errors, utils
from telethon.tl import types
from tqdm import tqdm

from exporter import ingest
from exporter.telethon_messages import message_row
from storage import Database, sync_state
from storage import chats as chats_table
from storage import people as people_table
from storage import settings as settings_table
from storage.rows import MessageRow

log = logging.getLogger(__name__)
BATCH = 500
BLOCKED_UNTIL = "sync_blocked_until"


class SyncError(Exception):
    """The sync cannot run now; the message says why and when."""


@dataclass
class SyncReport:
    chats: int = 0
    new: int = 0
    updated: int = 0
    owner_id: int | None = None
    blocked_until: int | None = None  # a long flood wait stopped the sync until then

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_person(entity: Any) -> bool:
    return (
        isinstance(entity, types.User)
        and not entity.bot
        and not entity.is_self
        and not entity.deleted
        and not entity.support
    )


async def sync(
    client: TelegramClient,
    db: Database,
    progress: bool = False,
    flood_sleep: int = 60,
    wait_time: float | None = None,
) -> SyncReport:
    """Back-fill every private chat with a person; waits up to `flood_sleep` seconds
    when Telegram asks to."""
    blocked = await settings_table.get(db, BLOCKED_UNTIL)
    if blocked and blocked > time.time():
        raise SyncError(
            "Telegram asked to wait before reading more history: try again after "
            + time.strftime("%Y-%m-%d %H:%M", time.localtime(blocked))
        )
    me = await client.get_me()
    try:
        async with db.transaction():
            await ingest.claim_owner(db, me.id, "the account the userbot is logged in as")
    except ingest.OwnerError as err:
        raise SyncError(str(err)) from None
    report = SyncReport(owner_id=me.id)
    started = int(time.time())
    people = [d.entity async for d in client.iter_dialogs() if is_person(d.entity)]
    bar = tqdm(total=len(people), desc="sync", unit="chat", disable=not progress)
    try:
        for person in people:
            while True:
                try:
                    await _sync_chat(client, db, person, me.id, report, wait_time)
                    break
                except errors.FloodWaitError as err:
                    if err.seconds > flood_sleep:
                        until = int(time.time()) + err.seconds
                        await settings_table.put(db, BLOCKED_UNTIL, until)
                        report.blocked_until = until
                        log.warning(
                            "flood wait of %s s: sync stops here, resume later", err.seconds
                        )
                        return report
                    log.info("flood wait of %s s: sleeping", err.seconds)
                    await asyncio.sleep(err.seconds)
            report.chats += 1
            bar.update(1)
            bar.set_postfix(new=report.new, refresh=False)
    finally:
        bar.close()
    await settings_table.delete(db, BLOCKED_UNTIL)
    async with db.transaction():  # for /status: the last import or sync
        await ingest.record(db, "sync", None, started, report.chats, report.new, report.updated)
    return report


async def _sync_chat(
    client: TelegramClient,
    db: Database,
    person: types.User,
    owner_id: int,
    report: SyncReport,
    wait_time: float | None,
) -> None:
    chat_id = utils.get_peer_id(person)
    mark = await sync_state.high_water_mark(db, chat_id)
    name = utils.get_display_name(person) or None
    async with db.transaction():
        await chats_table.upsert(db, chats_table.Chat(chat_id, "personal_chat", name))
        await people_table.upsert_names(db, {person.id: name} if name else {})
    newest = mark
    batch: list[MessageRow] = []
    try:
        async for message in client.iter_messages(person, min_id=mark, wait_time=wait_time):
            newest = max(newest, message.id)
            row = message_row(message, owner_id)
            if row is not None:
                batch.append(row)
            if len(batch) >= BATCH:
                await _write(db, batch, report)
                batch = []
    except errors.FloodWaitError:
        await _write(db, batch, report)  # keep what came; the mark stays, so it is re-read
        raise
    await _write(db, batch, report)
    if newest > mark:
        async with db.transaction():
            await sync_state.advance(db, chat_id, newest)


async def _write(db: Database, rows: list[MessageRow], report: SyncReport) -> None:
    if not rows:
        return
    async with db.transaction():
        new, updated = await ingest.store(db, rows)
    report.new += new
    report.updated += updated
