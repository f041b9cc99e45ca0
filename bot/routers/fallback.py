"""Commands nobody handled: unknown ones, and the owner's commands from anyone else
(who learn nothing about them)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message


def router() -> Router:
    routes = Router(name="fallback")
    routes.message.register(unknown_command, F.text.startswith("/"))
    routes.message.register(not_text)
    return routes


async def unknown_command(message: Message) -> None:
    await message.answer("I don't know that command. /help")


async def not_text(message: Message) -> None:
    await message.answer("I can only read text for now.")
