"""/status: what the twin knows and how it is doing (owner only)."""

from __future__ import annotations

import time

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.access import IsOwner
from bot.drafts import feedback
from bot.reports import picks_text
from bot.scheduler import RetrainSchedule
from storage import Database
from storage import adapters as adapters_table
from storage import chats as chats_table
from storage import imports as imports_table
from storage import memory as memory_table
from storage import messages as messages_table
from storage import runs as runs_table
from twin.engine.service import ReplyService


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _counted(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


async def _memory_line(db: Database, replies: ReplyService) -> str:
    if not replies.prompts.memory.enabled:
        return "Memory: off (memory.enabled)"
    remembered = _counted(await memory_table.count(db), "exchange")
    if not replies.remembers:
        return f"Memory: {remembered} of yours (off for the adapter served: not trained with it)"
    return f"Memory: {remembered} of yours"


def router() -> Router:
    routes = Router(name="status")
    routes.message.filter(IsOwner())
    routes.message.register(status, Command("status"))
    return routes


async def status(
    message: Message, db: Database, replies: ReplyService, schedule: RetrainSchedule | None
) -> None:
    await message.answer("\n".join(await status_lines(db, replies, schedule)))


async def status_lines(
    db: Database, replies: ReplyService, schedule: RetrainSchedule | None
) -> list[str]:
    last_import = await imports_table.last(db)
    active = await adapters_table.active(db)
    last_run = await runs_table.latest(db)
    running = await runs_table.running(db)
    messages, chats = await messages_table.count(db), await chats_table.count(db)
    lines = [
        f"Stored: {_counted(messages, 'message')} in {_counted(chats, 'chat')}",
        "Last import: "
        + (
            f"{_when(last_import.finished)} ({last_import.source}, {last_import.new:,} new)"
            if last_import
            else "never"
        ),
    ]
    if active is None:
        lines.append("Adapter: none yet, replies come from the base model")
    else:
        evaluation = active.metrics.get("evaluation", {})
        lines.append(
            f"Adapter: {active.id}, active since {_when((active.activated or 0) / 1e6)}; "
            f"validation loss {evaluation.get('adapter_loss', 0):.3f} vs base "
            f"{evaluation.get('base_loss', 0):.3f} ({evaluation.get('improvement', 0):+.1%})"
        )
        if "selection" in active.metrics:  # adapters trained before it was measured lack it
            lines.append(picks_text(active.metrics["selection"]))
    if running is not None:
        lines.append(
            f"Training now: run {running.id}, step {running.step} of {running.total_steps or '?'}"
        )
    elif last_run is not None:
        lines.append(
            f"Last training: run {last_run.id} {last_run.status} at {_when(last_run.finished)}"
        )
    else:
        lines.append("Last training: never")
    next_run = schedule.next_run() if schedule is not None else None
    lines.append(
        f"Next scheduled training: {_when(next_run.timestamp()) if next_run else 'not scheduled'}"
    )
    lines.append(await _memory_line(db, replies))
    lines.append(f"Replies waiting: {replies.pending}")
    stats = await feedback(db)
    if stats["decided"]:
        lines.append(
            f"Drafts, last 30 days: {stats['decided']} decided; sent as drafted "
            f"{stats['approval_rate']:.0%}, edited {stats['edit_rate']:.0%} (mean edit "
            f"{stats['mean_edit_distance']:.0f} characters), discarded {stats['discard_rate']:.0%}"
        )
    else:
        lines.append("Drafts, last 30 days: none decided yet")
    return lines
