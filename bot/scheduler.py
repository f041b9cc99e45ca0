"""Scheduled retraining: nightly by default, only when there is something new to learn.

APScheduler fires the check on `retrain.schedule` (cron syntax). A check starts a run
only if the owner wrote at least `retrain.min_new_messages` messages since the newest
reply the active adapter learned from. A fire missed while twin was not running is
made up once at start-up (the last check is remembered in the database), not once per
missed night.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.reports import TrainingReporter
from bot.training import TrainingLauncher
from storage import Database
from storage import adapters as adapters_table
from storage import messages as messages_table
from storage import settings as settings_table

log = logging.getLogger(__name__)
LAST_CHECK = "retrain_last_check"


class RetrainSchedule:
    def __init__(
        self,
        cron: str,
        min_new_messages: int,
        db: Database,
        launcher: TrainingLauncher,
        reporter: Callable[[], TrainingReporter],
    ) -> None:
        self.trigger = CronTrigger.from_crontab(cron)
        self.min_new_messages = min_new_messages
        self.db = db
        self.launcher = launcher
        self.reporter = reporter
        self.scheduler = AsyncIOScheduler()
        self.job = None

    async def start(self) -> None:
        # coalesce + a grace time: a fire delayed by a busy loop runs once, late.
        self.job = self.scheduler.add_job(
            self.check, self.trigger, coalesce=True, max_instances=1, misfire_grace_time=3600
        )
        self.scheduler.start()
        last = await settings_table.get(self.db, LAST_CHECK)
        if last is not None:
            missed = self.trigger.get_next_fire_time(None, datetime.fromtimestamp(last, UTC))
            if missed is not None and missed <= datetime.now(UTC):
                log.info("a scheduled retraining was missed at %s: checking now", missed)
                self.scheduler.add_job(self.check)
        else:
            await settings_table.put(self.db, LAST_CHECK, datetime.now(UTC).timestamp())

    def next_run(self) -> datetime | None:
        return self.job.next_run_time if self.job is not None else None

    async def new_messages(self) -> int:
        active = await adapters_table.active(self.db)
        since = int(active.metrics.get("data_until", 0)) if active is not None else 0
        return await messages_table.owner_count_since(self.db, since)

    async def check(self) -> None:
        await settings_table.put(self.db, LAST_CHECK, datetime.now(UTC).timestamp())
        new = await self.new_messages()
        if new < self.min_new_messages:
            log.info(
                "scheduled retraining skipped: %d new messages of %d needed",
                new,
                self.min_new_messages,
            )
            return
        reporter = self.reporter()
        started, _ = await self.launcher.start("schedule", reporter.progress, reporter.done)
        if started:
            await reporter.started(f"Scheduled retraining started: {new} new messages of yours.")

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
