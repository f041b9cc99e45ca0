"""The real bot assembled over the fake Bot API, for tests: start, stop, restart."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.app import make_bot, make_dispatcher, make_workflow
from bot.config import BotConfig
from bot.training import TrainingLauncher
from storage import Database
from tests.fake_telegram import FakeTelegram
from twin.engine.generate import Reply
from twin.engine.service import ReplyService
from twin.engine.settings import GenerationSettings
from twin.memory.scopes import EVERYONE, Scope


class Recording(ReplyService):
    """The real service, remembering what each reply was asked with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[tuple[list[tuple], GenerationSettings, Scope]] = []
        self.asked: list[str] = []  # the prompt of each reply, in order

    async def reply(
        self, rows: Any, settings: GenerationSettings, scope: Scope = EVERYONE, **more: Any
    ) -> Reply:
        self.requests.append((list(rows), settings, scope))
        reply = await super().reply(rows, settings, scope, **more)
        self.asked.append(reply.prompt)
        return reply


class Harness:
    def __init__(
        self, fake: FakeTelegram, db: Database, replies: Recording, config: BotConfig
    ) -> None:
        self.fake, self.db, self.replies, self.config = fake, db, replies, config
        self.bot = make_bot(config)
        self.launcher = TrainingLauncher(db, config.train_command)
        self.workflow = make_workflow(self.bot, config, db, replies)
        self.dispatcher = make_dispatcher(config, db, replies, self.launcher, None, self.workflow)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(
            self.dispatcher.start_polling(self.bot, handle_signals=False, polling_timeout=1)
        )

    async def stop(self) -> None:
        if self.task is None:
            return
        await self.dispatcher.stop_polling()
        await self.task
        self.task = None
        await self.bot.session.close()
