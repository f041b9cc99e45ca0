"""Telling the owner how training goes: one message edited as it progresses, then the
result and the loss curve."""

from __future__ import annotations

import logging
import time

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from bot.plots import loss_curve
from bot.training import Outcome
from storage import Database
from storage.runs import TrainingRun
from twin.engine.service import ReplyService

log = logging.getLogger(__name__)
EDIT_EVERY = 5.0  # seconds between progress edits: well within Telegram's edit limits


def progress_text(run: TrainingRun) -> str:
    loss = run.metrics.get("loss")
    speed = run.metrics.get("tokens_per_s")
    parts = [f"Training run {run.id}: step {run.step} of {run.total_steps or '?'}"]
    if loss is not None:
        parts.append(f"loss {loss:.3f}")
    if speed:
        parts.append(f"{speed:.0f} tokens/s")
    return ", ".join(parts)


def result_text(report: dict) -> str:
    verdict = "promoted: I now answer with it" if report["promoted"] else "not promoted"
    training = report["training"]
    return "\n".join(
        [
            f"Training run {report['run_id']} finished: adapter {report['adapter_id']} {verdict}.",
            f"Why: {report['reason']}.",
            f"Validation loss: base model {report['base_loss']:.3f} -> twin "
            f"{report['adapter_loss']:.3f} ({report['improvement']:+.1%}).",
            picks_text(report["selection"]) + ".",
            f"{training['steps']} steps on {report['samples']['train']} samples in "
            f"{training['seconds'] / 60:.1f} min ({training['tokens_per_s']:.0f} tokens/s).",
        ]
    )


def picks_text(selection: dict) -> str:
    """Selection in words: does the twin use the conversation, not only your style."""
    if selection["base"] is None:
        return f"Picking your real reply: not measured ({selection.get('reason') or 'no task'})"
    interval = selection.get("difference_ci95")
    sure = ""
    if interval is not None and interval[0] <= 0 <= interval[1]:
        sure = ", not a clear difference"
    return (
        f"Picks your real reply among {selection['candidates']} of yours: base model "
        f"{selection['base']:.0%} -> twin {selection['adapter']:.0%} "
        f"(chance {1 / selection['candidates']:.0%}, {selection['tasks']} replies{sure})"
    )


class TrainingReporter:
    def __init__(self, bot: Bot, owner_id: int, db: Database, replies: ReplyService) -> None:
        self.bot = bot
        self.owner_id = owner_id
        self.db = db
        self.replies = replies
        self.message_id: int | None = None
        self.last_edit = 0.0
        self.last_text = ""

    async def started(self, text: str) -> None:
        message = await self.bot.send_message(self.owner_id, text)
        self.message_id, self.last_text, self.last_edit = message.message_id, text, time.monotonic()

    async def progress(self, run: TrainingRun) -> None:
        text = progress_text(run)
        if text == self.last_text or time.monotonic() - self.last_edit < EDIT_EVERY:
            return
        if self.message_id is None:
            await self.started(text)
            return
        try:
            await self.bot.edit_message_text(
                text, chat_id=self.owner_id, message_id=self.message_id
            )
        except TelegramBadRequest as err:  # "message is not modified", or it was deleted
            log.debug("progress edit skipped: %s", err)
        self.last_text, self.last_edit = text, time.monotonic()

    async def done(self, outcome: Outcome) -> None:
        if outcome.report is None:
            await self.bot.send_message(self.owner_id, f"Training failed: {outcome.error}")
            return
        report = outcome.report
        if report["promoted"]:
            await self.replies.refresh(self.db)  # the new adapter answers from now on
        await self.bot.send_message(self.owner_id, result_text(report))
        training = report["training"]
        picture = loss_curve(
            training["train_losses"], training["val_losses"], f"Training run {report['run_id']}"
        )
        await self.bot.send_photo(
            self.owner_id, BufferedInputFile(picture, "loss.png"), caption="Loss during training"
        )
