"""Getting messages out whatever Telegram answers: rate limits and network trouble."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import ReplyParameters

from bot.telegram_text import fit

log = logging.getLogger(__name__)


class RetryMiddleware(BaseRequestMiddleware):
    """Every Bot API call: a 429 is waited out for its retry_after and tried again;
    network and server errors are retried with exponential backoff. (Long polling has
    its own backoff in aiogram and is left alone.)"""

    def __init__(self, attempts: int = 5, backoff: float = 0.5, max_wait: float = 60.0) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):
            return await make_request(bot, method)
        for attempt in range(self.attempts - 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as err:
                log.warning(
                    "%s: rate limited, waiting %s s", type(method).__name__, err.retry_after
                )
                await asyncio.sleep(min(err.retry_after, self.max_wait))
            except (TelegramNetworkError, TelegramServerError) as err:
                wait = min(self.backoff * 2**attempt, self.max_wait)
                log.warning("%s failed (%s); retrying in %.1f s", type(method).__name__, err, wait)
                await asyncio.sleep(wait)
        return await make_request(bot, method)


async def send_messages(
    bot: Bot, chat_id: int, messages: list[str], pause: float = 0.6, reply_to: int | None = None
) -> None:
    """A reply of several messages, sent as a person sends a burst: one after another,
    a moment apart (and within Telegram's one message a second per chat); the first as
    a reply to `reply_to`, where given (in a group: which message it answers)."""
    for index, text in enumerate(fit(messages)):
        if index:
            await asyncio.sleep(pause)
        answered = None
        if reply_to is not None and not index:
            answered = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
        await bot.send_message(chat_id, text, reply_parameters=answered)
