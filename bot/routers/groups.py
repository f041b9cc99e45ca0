"""The twin in group chats (bot.groups): everyone in a group reads what the bot says,
so there it speaks only when addressed (its @username or name, or a reply to one of its
messages), once per message and at most once in bot.group_pause seconds, and recalls
only what was said in that group. Nothing else of the bot answers in a group: no
command (the owner's included), no report. This router comes first."""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable

from aiogram import Bot, F, Router
from aiogram.filters import Filter
from aiogram.types import Message

from bot.config import BotConfig
from bot.routers.chat import answer
from storage import Database
from twin.engine.service import ReplyService
from twin.memory import scopes

log = logging.getLogger(__name__)
GROUP_CHATS = ("group", "supergroup")
REMEMBERED = 200  # message ids per group kept to answer each message once


def router() -> Router:
    routes = Router(name="groups")
    routes.message.filter(F.chat.type.in_(GROUP_CHATS))
    routes.message.register(speak, F.text & ~F.text.startswith("/"), Addressed())
    routes.message.register(stay_silent)
    return routes


class Addressed(Filter):
    """A group message to the twin: a reply to one of its messages, its @username, or
    its name as a word of its own."""

    async def __call__(self, message: Message, bot: Bot) -> bool:
        me = await bot.me()
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
            return True
        text = message.text or ""
        if any(
            e.type == "text_mention" and e.user and e.user.id == me.id
            for e in message.entities or []
        ):
            return True
        names = [f"@{me.username}"] if me.username else []
        names.append(me.first_name)
        return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text, re.IGNORECASE) for n in names)


class GroupPace:
    """Which group messages the twin answered and when it last spoke in each group: one
    reply per message (an update Telegram delivers again is not answered again), and none
    sooner than `pause` seconds after the last."""

    def __init__(self, pause: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.pause = pause
        self.clock = clock
        self.spoke: dict[int, float] = {}
        self.answered: dict[int, deque[int]] = {}

    def claim(self, chat_id: int, message_id: int) -> str | None:
        """None, and the message is the twin's to answer; or why it stays silent."""
        answered = self.answered.setdefault(chat_id, deque(maxlen=REMEMBERED))
        if message_id in answered:
            return "already answered"
        now = self.clock()
        last = self.spoke.get(chat_id)
        if last is not None and now - last < self.pause:
            return f"spoke {now - last:.0f} s ago"
        answered.append(message_id)
        self.spoke[chat_id] = now
        return None


async def speak(
    message: Message,
    bot: Bot,
    db: Database,
    replies: ReplyService,
    config: BotConfig,
    group_pace: GroupPace,
) -> None:
    silent = group_pace.claim(message.chat.id, message.message_id)
    if silent is not None:
        log.info("silent in group %s: %s", message.chat.id, silent)
        return
    scope = scopes.group(message.chat.id)
    await answer(message, bot, db, replies, config, scope, reply_to=message.message_id)


async def stay_silent(message: Message) -> None:
    """Not addressed, a command, or not text: nobody in the group hears anything."""
