"""Chatting with the clone: an allowed user writes, the twin answers in the owner's style."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from bot.config import BotConfig
from bot.delivery import send_messages
from storage import Database, bot_messages
from twin.engine.errors import DegenerateReply
from twin.engine.service import ReplyService
from twin.engine.style import owner_generation
from twin.memory import scopes

log = logging.getLogger(__name__)


def memory_scope(message: Message, config: BotConfig) -> scopes.Scope:
    """What the twin may remember talking to this person: the owner hears everything;
    anyone else only the owner's own chat with them, unless the owner shares more."""
    user_id = message.from_user.id
    if user_id == config.owner_id:
        return scopes.EVERYONE
    return scopes.bot_user(user_id, shared=config.memory.share_with_bot_users)


def router() -> Router:
    routes = Router(name="chat")
    routes.message.register(talk, F.text & ~F.text.startswith("/"))
    return routes


async def talk(
    message: Message, bot: Bot, db: Database, replies: ReplyService, config: BotConfig
) -> None:
    await answer(message, bot, db, replies, config, memory_scope(message, config))


async def answer(
    message: Message,
    bot: Bot,
    db: Database,
    replies: ReplyService,
    config: BotConfig,
    scope: scopes.Scope,
    reply_to: int | None = None,
) -> None:
    """The twin's reply to `message`, recalling within `scope`, against the chat's recent
    messages; both are kept as the chat's history."""
    chat_id = message.chat.id
    await bot_messages.add(db, chat_id, message.from_user.id, False, message.text)
    history = await bot_messages.recent(db, chat_id, config.bot.history_limit)
    generation = await owner_generation(db, config.generation)
    await replies.refresh(db)
    async with ChatActionSender.typing(chat_id=chat_id, bot=bot):
        try:
            reply = await replies.reply(history, generation, scope)
        except DegenerateReply as err:
            log.warning("no reply for chat %s: %s", chat_id, err)
            await message.answer("…I'm lost for words. Say that again?")
            return
    await send_messages(bot, chat_id, reply.messages, reply_to=reply_to)
    for text in reply.messages:
        await bot_messages.add(db, chat_id, bot.id, True, text)
    log.info(
        "replied in chat %s: %d message(s), %.1f s, %.1f tokens/s",
        chat_id,
        len(reply.messages),
        reply.seconds,
        reply.tokens_per_s,
    )
