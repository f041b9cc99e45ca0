"""The bot assembled: a Telegram client, the routers, and the services they share.

`run_bot` is what `twin run` runs: polling, scheduled retraining and (when configured)
the userbot share one asyncio loop and one database. aiogram stops polling on SIGINT
and SIGTERM; in-flight replies finish first, then everything closes in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import BotCommandScopeChat, BotCommandScopeDefault, ErrorEvent, TelegramObject
from aiogram.utils.token import extract_bot_id

from bot.access import AccessMiddleware
from bot.config import BotConfig
from bot.conversation_state import DatabaseStorage
from bot.delivery import RetryMiddleware
from bot.drafts import DraftWorkflow
from bot.reports import TrainingReporter
from bot.routers import chat, drafts, facts, fallback, groups, help, retrain, status, style
from bot.scheduler import RetrainSchedule
from bot.training import TrainingLauncher
from exporter.live import LiveUserbot
from storage import Database
from twin.engine.service import ReplyService
from twin.engine.settings import GenerationSettings
from twin.engine.style import owner_generation

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
    workflow: DraftWorkflow,
) -> Dispatcher:
    """Routers in order of precedence; the services reach handlers as arguments."""
    in_flight = InFlight()
    storage = DatabaseStorage(db)
    owner_state = FSMContext(
        storage,
        StorageKey(
            bot_id=extract_bot_id(config.token), chat_id=config.owner_id, user_id=config.owner_id
        ),
    )
    workflow.on_settled = partial(drafts.forget_edit, owner_state)
    dispatcher = Dispatcher(
        storage=storage,
        config=config,
        db=db,
        replies=replies,
        launcher=launcher,
        schedule=schedule,
        drafts=workflow,
        in_flight=in_flight,
        group_pace=groups.GroupPace(config.bot.group_pause),
    )
    dispatcher.update.outer_middleware(in_flight)
    access = AccessMiddleware(config)
    dispatcher.message.outer_middleware(access)
    dispatcher.callback_query.outer_middleware(access)
    dispatcher.include_routers(
        groups.router(),  # first: in a group nothing else answers
        help.router(),
        retrain.router(),
        style.router(),
        facts.router(),
        status.router(),
        drafts.router(),  # before chat: an owner editing a draft is not chatting
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


def make_workflow(
    bot: Bot, config: BotConfig, db: Database, replies: ReplyService
) -> DraftWorkflow:
    async def generation() -> GenerationSettings:
        return await owner_generation(db, config.generation)

    return DraftWorkflow(bot, db, replies, config.owner_id, config.drafts, generation)


async def run_bot(
    config: BotConfig,
    db: Database,
    replies: ReplyService,
    userbot: Callable[[DraftWorkflow], Awaitable[LiveUserbot | None]] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. `userbot`, when given, connects the owner's account
    and wires its messages to the draft workflow."""
    bot = make_bot(config)
    workflow = make_workflow(bot, config, db, replies)
    launcher = TrainingLauncher(db, config.train_command)
    schedule = None
    if config.retrain.schedule:
        schedule = RetrainSchedule(
            config.retrain.schedule,
            config.retrain.min_new_messages,
            db,
            launcher,
            lambda: TrainingReporter(bot, config.owner_id, db, replies),
        )
    dispatcher = make_dispatcher(config, db, replies, launcher, schedule, workflow)
    live = None
    try:
        await replies.start(db)
        if userbot is not None:
            live = await userbot(workflow)
            workflow.userbot = live
            await workflow.reconcile()
            workflow.keep_reconciling()
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
        await workflow.stop()
        await launcher.stop()
        if live is not None:
            await live.client.disconnect()
        await bot.session.close()
