"""/start and /help: what the twin is, and (for the owner) what it can be told."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import BotCommand, Message

FOR_EVERYONE = (
    "Hi! I'm a digital twin: I write the way my owner does, learned from their chats. "
    "Just write to me."
)
OWNER_COMMANDS = [
    BotCommand(command="status", description="what the twin knows, and how it is doing"),
    BotCommand(command="style", description="your style, and the knobs: /style temperature 0.8"),
    BotCommand(command="facts", description="what the twin knows about you: /facts set ..."),
    BotCommand(command="retrain", description="train a new adapter on your chats now"),
    BotCommand(command="drafts", description="replies waiting for your approval"),
    BotCommand(command="mode", description="per chat: draft, auto or off"),
    BotCommand(command="help", description="this list"),
]
EVERYONE_COMMANDS = [BotCommand(command="help", description="what this bot is")]


def router() -> Router:
    routes = Router(name="help")
    routes.message.register(show_help, CommandStart())
    routes.message.register(show_help, Command("help"))
    return routes


async def show_help(message: Message, is_owner: bool) -> None:
    if not is_owner:
        await message.answer(FOR_EVERYONE)
        return
    lines = [f"/{c.command} - {c.description}" for c in OWNER_COMMANDS]
    await message.answer(
        "I'm your twin. Messages here get replies in your style; drafts for your real "
        "chats arrive here for approval.\n\n" + "\n".join(lines)
    )
