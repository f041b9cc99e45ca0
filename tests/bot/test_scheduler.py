"""Scheduled retraining: nights missed while twin was down are made up once, a check
with too little new data trains nothing, and the next fire time is the cron's."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta

from bot.scheduler import LAST_CHECK, RetrainSchedule
from bot.training import Outcome, TrainingLauncher
from storage import Database
from storage import chats as chats_table
from storage import messages as messages_table
from storage import settings as settings_table
from storage.rows import MessageRow
from storage.runs import TrainingRun

OWNER = 1
FRIEND = 2
# Stands in for `twin train --json`: a real process that prints a report and exits.
FAKE_TRAIN = [sys.executable, "-c", f"print({json.dumps(json.dumps({'promoted': True}))})"]


class Reports:
    """Records what the schedule tells the owner (in place of the bot's reporter)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.outcomes: list[Outcome] = []

    async def started(self, text: str) -> None:
        self.messages.append(text)

    async def progress(self, run: TrainingRun) -> None:
        pass

    async def done(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


async def owner_writes(db: Database, count: int) -> None:
    await chats_table.upsert(db, chats_table.Chat(FRIEND, "personal_chat", "Friend"))
    now = int(time.time())
    rows = [
        MessageRow(FRIEND, i, OWNER, True, now - 60 + i, f"message {i}", *[None] * 5)
        for i in range(count)
    ]
    async with db.transaction():
        await messages_table.insert_new(db, rows)


def schedule(db: Database, reports: Reports, min_new: int) -> RetrainSchedule:
    launcher = TrainingLauncher(db, FAKE_TRAIN)
    return RetrainSchedule("0 3 * * *", min_new, db, launcher, lambda: reports)


async def settle(check: RetrainSchedule) -> None:
    """Let start-up jobs run, then wait for any training they launched."""
    for _ in range(20):
        await asyncio.sleep(0.1)
        if check.launcher.busy():
            await check.launcher.wait()
            return


async def test_nights_missed_while_down_are_made_up_once(db: Database) -> None:
    await owner_writes(db, 5)
    three_nights_ago = (datetime.now(UTC) - timedelta(days=3, hours=1)).timestamp()
    await settings_table.put(db, LAST_CHECK, three_nights_ago)
    reports = Reports()
    check = schedule(db, reports, min_new=3)
    await check.start()
    try:
        await settle(check)
        await asyncio.sleep(0.5)  # room for a second, wrong, catch-up
    finally:
        check.shutdown()
    assert reports.messages == ["Scheduled retraining started: 5 new messages of yours."]
    assert [o.report for o in reports.outcomes] == [{"promoted": True}]
    assert await settings_table.get(db, LAST_CHECK) > three_nights_ago


async def test_too_little_new_data_trains_nothing(db: Database) -> None:
    await owner_writes(db, 2)
    before = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    await settings_table.put(db, LAST_CHECK, before)
    reports = Reports()
    check = schedule(db, reports, min_new=3)
    await check.start()
    try:
        await settle(check)
    finally:
        check.shutdown()
    assert reports.messages == [] and reports.outcomes == []
    assert not check.launcher.busy()
    assert await settings_table.get(db, LAST_CHECK) > before  # the check itself happened


async def test_a_first_start_waits_for_the_schedule(db: Database) -> None:
    await owner_writes(db, 5)
    reports = Reports()
    check = schedule(db, reports, min_new=1)
    await check.start()
    try:
        await settle(check)
        next_run = check.next_run()
    finally:
        check.shutdown()
    assert reports.messages == []
    assert await settings_table.get(db, LAST_CHECK) is not None
    assert next_run is not None and (next_run.hour, next_run.minute) == (3, 0)
    assert timedelta(0) < next_run - datetime.now(next_run.tzinfo) <= timedelta(days=1)
