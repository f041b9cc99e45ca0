"""/facts: what the twin knows about its owner (where he lives, works, is called),
put in the prompt of every reply. The owner writes them; they win over memory.facts."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.access import IsOwner
from bot.config import BotConfig
from storage import Database
from storage import settings as settings_table
from twin.engine.service import ReplyService
from twin.prompt.facts import owner_facts

USAGE = "Usage: /facts, /facts set TEXT (e.g. /facts set I live in Kazan), /facts clear"
MAX_CHARS = 1000  # in every prompt: a few lines, not a biography


def router() -> Router:
    routes = Router(name="facts")
    routes.message.filter(IsOwner())
    routes.message.register(facts, Command("facts"))
    return routes


async def facts(
    message: Message, command: CommandObject, db: Database, replies: ReplyService, config: BotConfig
) -> None:
    action, _, text = (command.args or "").strip().partition(" ")
    if not action:
        await message.answer(await _shown(db, config, replies))
    elif action == "clear" and not text:
        await settings_table.put(db, settings_table.FACTS, "")
        await replies.refresh(db)
        await message.answer("Facts cleared: replies no longer get them.")
    elif action == "set" and text.strip():
        if len(text.strip()) > MAX_CHARS:
            await message.answer(f"Too long: keep your facts under {MAX_CHARS} characters.")
            return
        await settings_table.put(db, settings_table.FACTS, text.strip())
        await replies.refresh(db)
        await message.answer("Saved; the next reply knows them. " + _who_hears(config))
    else:
        await message.answer(USAGE)


async def _shown(db: Database, config: BotConfig, replies: ReplyService) -> str:
    text = await owner_facts(db, config.memory)
    lines = [f"Your facts:\n{text}" if text.strip() else "No facts about you yet."]
    if not replies.remembers:
        lines.append(
            "Memory is off for the adapter served now (memory.enabled, or an adapter "
            "trained without it): replies do not get them until the next training."
        )
    else:
        lines.append(_who_hears(config))
    lines.append(USAGE)
    return "\n\n".join(lines)


def _who_hears(config: BotConfig) -> str:
    if config.bot.allow == "owner":
        return "Only you chat with the bot; drafts for your chats use them too."
    return "Everyone who may chat with your twin can hear them."
