"""`twin reply TEXT` and `twin chat`: the twin answering in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from storage import Database, with_database
from storage import messages as messages_table
from storage import settings as settings_table
from trainer.checkpoints import prepare
from trainer.device import choose_device, choose_precision
from trainer.generate import (
    DegenerateReply,
    GenerationSettings,
    Reply,
    ReplyEngine,
    parse_knob,
    with_knobs,
)
from trainer.prompt import Prompt
from trainer.serving import ReplyService
from twin.commands.common import config_options, db_options, db_path, json_options, print_json
from twin.settings import Settings

YOU = 1  # the sender id of the person talking to the twin in `twin chat`


def register(commands: argparse._SubParsersAction) -> None:
    reply = commands.add_parser(
        "reply",
        parents=[config_options(), db_options(), json_options()],
        help="one reply from the twin to TEXT",
        description="The twin's reply to TEXT, as if someone sent it; with --chat, the "
        "stored history of that chat is the conversation so far.",
    )
    reply.add_argument("text", metavar="TEXT")
    reply.add_argument("--chat", type=int, metavar="ID", help="a stored chat whose history to use")
    reply.add_argument("--seed", type=int, help="fixed seed: the same reply every time")
    reply.set_defaults(run=run_reply)
    chat = commands.add_parser(
        "chat",
        parents=[config_options(), db_options()],
        help="talk to the twin in the terminal (/style knobs, /quit)",
    )
    chat.set_defaults(run=run_chat)


def make_engine(settings: Settings) -> ReplyEngine:
    checkpoint = prepare(settings.model, settings.models_dir)
    device = choose_device(settings.model.device)
    return ReplyEngine(
        checkpoint,
        Prompt(settings.prompt),
        choose_precision(device, settings.model.precision),
        device,
        settings.generate.max_seq_length,
    )


def make_service(settings: Settings, engine: ReplyEngine | None = None) -> ReplyService:
    return ReplyService(
        (lambda: engine) if engine is not None else (lambda: make_engine(settings)),
        Prompt(settings.prompt),
        settings.dataset.session_gap,
        settings.dataset.context_tokens,
    )


async def _ready(db: Database, service: ReplyService) -> dict[str, Any]:
    """Serve the active adapter; the owner's /style knobs."""
    await service.refresh(db)
    return await settings_table.get(db, settings_table.STYLE, {})


def run_reply(args: argparse.Namespace, settings: Settings) -> int:
    database = db_path(args, settings)
    engine = make_engine(settings)
    service = make_service(settings, engine)

    async def go(db: Database) -> Reply:
        knobs = await _ready(db, service)
        rows = await messages_table.recent(db, args.chat) if args.chat is not None else []
        incoming = (YOU, 0, int(time.time()), args.text, None, None)
        generation = with_knobs(settings.generate, knobs)
        if args.seed is not None:
            generation = generation.model_copy(update={"seed": args.seed})
        return await service.reply([*rows, incoming], generation)

    reply = with_database(database, go, create=True)
    if args.json:
        print_json(
            {
                "messages": reply.messages,
                "adapter": reply.adapter,
                "seed": reply.seed,
                "seconds": round(reply.seconds, 2),
                "first_token_seconds": round(reply.first_token_seconds, 2),
                "tokens_per_s": round(reply.tokens_per_s, 1),
            }
        )
    else:
        print("\n".join(reply.messages))
    return 0


def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    database = db_path(args, settings)
    engine = make_engine(settings)
    service = make_service(settings, engine)
    knobs = with_database(database, lambda db: _ready(db, service), create=True)
    generation = with_knobs(settings.generate, knobs)
    who = "the base model" if engine.adapter is None else "your twin"
    print(f"Talking to {who}. /style to see or set knobs (/style temperature 0.9), /quit to leave.")
    history: list[tuple] = []
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line.startswith("/style"):
            generation = _style_command(line, settings.generate, generation, database)
            continue
        history.append((YOU, 0, int(time.time()), line, None, None))
        try:
            reply = asyncio.run(service.reply(history, generation))
        except DegenerateReply as err:
            print(f"(no reply: {err})")
            continue
        for message in reply.messages:
            print(f"twin> {message}")
        history.append((0, 1, int(time.time()), "\n".join(reply.messages), None, None))


def _style_command(
    line: str, configured: GenerationSettings, current: GenerationSettings, database: Path
) -> GenerationSettings:
    parts = line.split()
    if len(parts) == 1:
        print(
            ", ".join(
                f"{k}={getattr(current, k)}" for k in ("temperature", "length", "top_p", "top_k")
            )
        )
        return current
    if parts[1] == "reset":
        with_database(
            database, lambda db: settings_table.delete(db, settings_table.STYLE), create=True
        )
        print("style reset")
        return configured
    if len(parts) != 3:
        print("usage: /style [NAME VALUE | reset]")
        return current
    try:
        name, value = parse_knob(parts[1], parts[2])
    except ValueError as err:
        print(err)
        return current

    async def save(db: Database) -> None:
        knobs = await settings_table.get(db, settings_table.STYLE, {})
        await settings_table.put(db, settings_table.STYLE, {**knobs, name: value})

    with_database(database, save, create=True)
    print(f"{name} = {value}")
    return current.model_copy(update={name: value})
