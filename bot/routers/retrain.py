"""/retrain: train a new adapter now (owner only)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.access import IsOwner
from bot.reports import TrainingReporter, progress_text
from bot.training import TrainingLauncher
from storage import Database
from twin.engine.service import ReplyService


def router() -> Router:
    routes = Router(name="retrain")
    routes.message.filter(IsOwner())
    routes.message.register(retrain, Command("retrain"))
    return routes


async def retrain(
    message: Message, bot: Bot, db: Database, launcher: TrainingLauncher, replies: ReplyService
) -> None:
    reporter = TrainingReporter(bot, message.chat.id, db, replies)
    started, running = await launcher.start("bot", reporter.progress, reporter.done)
    if started:
        await reporter.started("Training started: building the dataset and loading the model…")
    elif running is None:
        await message.answer("Already training: the run is starting up.")
    else:
        await message.answer(f"Already training. {progress_text(running)}")
