"""The bot assembled: a Telegram client, the routers, and the services they share.

`run_bot` is what `twin run` runs: polling, scheduled retraining and (when configured)
the userbot share one asyncio loop and one database. aiogram stops polling on SIGINT
and SIGTERM; in-flight replies finish first, then everything closes in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommandScopeChat, BotCommandScopeDefault, ErrorEvent, TelegramObject

from bot.access import AccessMiddleware
from bot.config import BotConfig
from bot.delivery import RetryMiddleware
from bot.reports import TrainingReporter
from bot.routers import chat, fallback, help, retrain, status, style
from bot.scheduler import RetrainSchedule
from bot.training import TrainingLauncher
from storage import Database
from trainer.serving import ReplyService

log = logging.getLogger(__name__)
APOLOGY = "Sorry, something went wrong on my side. Try again in a moment."
DRAIN_SECONDS = 120.0


class InFlight(BaseMiddleware):
    """Counts the updates being handled, so that shutdown can let them finish: a reply
    being generated when SIGTERM arrives is still sent."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            return await handler(event, data)
        finally:
            self.tasks.discard(task)  # type: ignore[arg-type]

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        current = asyncio.current_task()
        waiting = {t for t in self.tasks if t is not current}
        if waiting:
            log.info("finishing %d reply(ies) in flight", len(waiting))
            await asyncio.wait(waiting, timeout=timeout)


def make_bot(config: BotConfig) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(config.api_url))
    session.middleware(RetryMiddleware())
    return Bot(config.token, session=session, default=DefaultBotProperties(parse_mode=None))


def make_dispatcher(
    config: BotConfig,
    db: Database,
    replies: ReplyService,
    launcher: TrainingLauncher,
    schedule: RetrainSchedule | None,
) -> Dispatcher:
    """Routers in order of precedence; the services reach handlers as arguments."""
    in_flight = InFlight()
    dispatcher = Dispatcher(
        config=config,
        db=db,
        replies=replies,
        launcher=launcher,
        schedule=schedule,
        in_flight=in_flight,
    )
    dispatcher.update.outer_middleware(in_flight)
    access = AccessMiddleware(config)
    dispatcher.message.outer_middleware(access)
    dispatcher.callback_query.outer_middleware(access)
    dispatcher.include_routers(
        help.router(),
        retrain.router(),
        style.router(),
        status.router(),
        chat.router(),
        fallback.router(),
    )
    dispatcher.errors.register(_apologize)
    return dispatcher


async def _apologize(event: ErrorEvent, bot: Bot) -> None:
    """A handler failed: log it whole, tell the person briefly, keep running."""
    log.error("handler failed on update %s", event.update.update_id, exc_info=event.exception)
    message = event.update.message or (
        event.update.callback_query.message if event.update.callback_query else None
    )
    if message is not None:
        try:
            await bot.send_message(message.chat.id, APOLOGY)
        except Exception:  # telling them failed too: logged above, nothing more to do
            log.exception("could not apologize")


async def register_commands(bot: Bot, owner_id: int) -> None:
    await bot.set_my_commands(help.EVERYONE_COMMANDS, scope=BotCommandScopeDefault())
    await bot.set_my_commands(help.OWNER_COMMANDS, scope=BotCommandScopeChat(chat_id=owner_id))


async def run_bot(config: BotConfig, db: Database, replies: ReplyService) -> None:
    """Serve until SIGINT/SIGTERM."""
    bot = make_bot(config)
    launcher = TrainingLauncher(db, config.train_command)
    schedule = None
    if config.schedule:
        schedule = RetrainSchedule(
            config.schedule,
            config.min_new_messages,
            db,
            launcher,
            lambda: TrainingReporter(bot, config.owner_id, db, replies),
        )
    dispatcher = make_dispatcher(config, db, replies, launcher, schedule)
    try:
        await replies.start(db)
        await register_commands(bot, config.owner_id)
        if schedule is not None:
            await schedule.start()
        me = await bot.get_me()
        log.info("serving as @%s", me.username)
        await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=False)
        await dispatcher["in_flight"].drain()
    finally:
        if schedule is not None:
            schedule.shutdown()
        await launcher.stop()
        await bot.session.close()
