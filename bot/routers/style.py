"""/style: the owner's style in numbers, and the knobs of the twin's replies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.access import IsOwner
from bot.config import BotConfig
from storage import Database
from storage import adapters as adapters_table
from storage import runs as runs_table
from storage import settings as settings_table
from trainer.generate import KNOBS, parse_knob, with_knobs
from trainer.style import StyleProfile, profile


def router() -> Router:
    routes = Router(name="style")
    routes.message.filter(IsOwner())
    routes.message.register(style, Command("style"))
    return routes


async def style(message: Message, command: CommandObject, db: Database, config: BotConfig) -> None:
    words = (command.args or "").split()
    knobs = await settings_table.get(db, settings_table.STYLE, {})
    if not words:
        described = await _profile(db)
        current = with_knobs(config.generation, knobs)
        await message.answer(_describe(described, current.model_dump(include=set(KNOBS))))
        return
    if words == ["reset"]:
        await settings_table.delete(db, settings_table.STYLE)
        await message.answer("Knobs reset to the configured defaults.")
        return
    if len(words) != 2:
        await message.answer(
            "Usage: /style, /style NAME VALUE (e.g. /style temperature 0.8), /style reset"
        )
        return
    try:
        name, value = parse_knob(*words)
    except ValueError as err:
        await message.answer(f"Cannot set that: {err}")
        return
    await settings_table.put(db, settings_table.STYLE, {**knobs, name: value})
    await message.answer(f"{name} is now {value}; the next reply uses it.")


async def _profile(db: Database) -> StyleProfile | None:
    """Your style, from the samples the newest adapter (or run) learned from."""
    active = await adapters_table.active(db)
    run = await runs_table.latest(db, "finished")
    candidates = [Path(active.path) / "meta.json"] if active else []
    paths: list[Path] = []
    for meta in candidates:
        if meta.is_file():
            paths.append(Path(json.loads(meta.read_text(encoding="utf-8"))["dataset"]))
    if run is not None and run.run_dir:
        paths.append(Path(run.run_dir) / "samples.jsonl")
    for path in paths:
        if path.is_file():
            return await asyncio.to_thread(_profile_of, path)
    return None


def _profile_of(path: Path) -> StyleProfile:
    replies, others = [], []
    with path.open(encoding="utf-8") as file:
        for line in file:
            sample = json.loads(line)
            replies.append(sample["output"])
            if sample["instruction"]:
                others.append(sample["instruction"])
    return profile(replies, others)


def _describe(style: StyleProfile | None, knobs: dict) -> str:
    lines = []
    if style is None:
        lines.append("No style profile yet: train the twin first (/retrain).")
    else:
        langs = ", ".join(f"{k} {v:.0%}" for k, v in style.languages.items()) or "-"
        marks = ", ".join(f"{k} {v:.0%}" for k, v in style.punctuation.items())
        lines += [
            f"Your style, from {style.replies} of your replies:",
            f"• typical length: {style.median_chars:.0f} characters, "
            f"{style.messages_per_reply:.1f} messages per burst",
            f"• emoji in {style.emoji_rate:.0%} of messages; favourites: "
            f"{' '.join(style.favourite_emoji) or '-'}",
            f"• frequent words: {', '.join(style.frequent_words) or '-'}",
            f"• your filler words: {', '.join(style.filler_words) or '-'}",
            f"• messages ending with: {marks}",
            f"• languages: {langs}",
        ]
    settings = ", ".join(f"{k}={v}" for k, v in knobs.items())
    lines += [
        "",
        f"Knobs: {settings}",
        "Change: /style temperature 0.8 · /style length short · /style reset",
    ]
    return "\n".join(lines)
