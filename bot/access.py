"""Who may use the bot: a middleware in front of every message and button press."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, User

from bot.config import BotConfig

log = logging.getLogger(__name__)
REFUSAL = "Hi! This is a private digital twin; it only talks to the people its owner chose. Sorry!"


class AccessMiddleware(BaseMiddleware):
    """Lets allowed users through (marking the owner), and answers everyone else once
    with a polite refusal, then silence (in a group, silence only). Only private chats,
    unless bot.groups is on."""

    def __init__(self, config: BotConfig) -> None:
        self.config = config
        self.refused: set[int] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.is_bot:
            return None
        chat: Chat | None = data.get("event_chat")
        if chat is not None and chat.type != "private" and not self.config.bot.groups:
            # In a group everyone would read the twin, /status and training reports.
            log.info("ignored an update from %s chat %s", chat.type, chat.id)
            return None
        data["is_owner"] = user.id == self.config.owner_id
        if self.config.allows(user.id):
            return await handler(event, data)
        log.info("refused user %s", user.id)
        if chat is not None and chat.type != "private":
            return None  # a refusal in a group would be read by all, at every message
        if isinstance(event, CallbackQuery):
            await event.answer()
        elif isinstance(event, Message) and user.id not in self.refused:
            self.refused.add(user.id)
            await event.answer(REFUSAL)
        return None


class IsOwner(Filter):
    async def __call__(self, event: TelegramObject, is_owner: bool = False) -> bool:
        return is_owner
