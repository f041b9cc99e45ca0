"""/style: the owner's style in numbers, and the knobs of the twin's replies."""

from __future__ import annotations

import asyncio

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from bot.access import IsOwner
from bot.config import BotConfig
from storage import Database
from storage import settings as settings_table
from twin.dataset.style import describe, owner_style
from twin.engine.settings import describe_knobs, parse_knob
from twin.engine.style import owner_generation
from twin.prompt.samples import SampleMaker

USAGE = "Usage: /style, /style NAME VALUE (e.g. /style temperature 0.8), /style reset"


def router() -> Router:
    routes = Router(name="style")
    routes.message.filter(IsOwner())
    routes.message.register(style, Command("style"))
    return routes


async def style(
    message: Message, command: CommandObject, bot: Bot, db: Database, config: BotConfig
) -> None:
    words = (command.args or "").split()
    if not words:
        async with ChatActionSender.typing(chat_id=message.chat.id, bot=bot):
            described = await _profile_and_knobs(db, config)
        await message.answer(described)
    elif words == ["reset"]:
        await settings_table.delete(db, settings_table.STYLE)
        await message.answer("Knobs reset to the configured defaults.")
    elif len(words) != 2:
        await message.answer(USAGE)
    else:
        try:
            name, value = parse_knob(*words)
        except ValueError as err:
            await message.answer(f"Cannot set that: {err}")
            return
        await settings_table.set_knob(db, name, value)
        await message.answer(f"{name} is now {value}; the next reply uses it.")


async def _profile_and_knobs(db: Database, config: BotConfig) -> str:
    # Built from the whole database: seconds on a large one, so off the event loop.
    profile = await asyncio.to_thread(
        owner_style, db.path, config.dataset, SampleMaker(config.prompt)
    )
    lines = (
        describe(profile) if profile else ["No style profile yet: none of your replies is stored."]
    )
    knobs = await owner_generation(db, config.generation)
    return "\n".join(
        [
            *lines,
            "",
            f"Knobs: {describe_knobs(knobs)}",
            "Change: /style temperature 0.8 · /style length short · /style reset",
        ]
    )
