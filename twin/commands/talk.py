"""`twin reply TEXT` and `twin chat`: the twin answering in the terminal."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from storage import BlockingDatabase, Database, StorageError
from storage import chats as chats_table
from storage import messages as messages_table
from storage import settings as settings_table
from storage.rows import HistoryRow
from twin.commands.common import config_options, db_options, db_path, json_options, print_json
from twin.engine.errors import DegenerateReply
from twin.engine.settings import GenerationSettings, describe_knobs, parse_knob
from twin.engine.style import owner_generation
from twin.memory.scopes import chat_first
from twin.settings import Settings
from twin.wiring import make_engine, make_service

if TYPE_CHECKING:
    from twin.engine.generate import Engine, Reply
    from twin.engine.service import ReplyService

YOU = 1  # the sender id of the person talking to the twin in `twin chat`


def register(commands: argparse._SubParsersAction) -> None:
    reply = commands.add_parser(
        "reply",
        parents=[config_options(), db_options(), json_options()],
        description="The twin's reply to TEXT, as if someone sent it; with --chat, TEXT "
        "continues that stored chat's latest conversation, whose turns are the context.",
    )
    reply.add_argument("text", metavar="TEXT")
    reply.add_argument("--chat", type=int, metavar="ID", help="a stored chat whose history to use")
    reply.add_argument("--seed", type=int, help="fixed seed: the same reply every time")
    reply.set_defaults(run=run_reply)
    chat = commands.add_parser(
        "chat",
        parents=[config_options(), db_options()],
    )
    chat.set_defaults(run=run_chat)


async def _ready(db: Database, service: ReplyService, settings: Settings) -> GenerationSettings:
    """Serve the active adapter; the settings replies are sampled with (/style on top)."""
    await service.refresh(db)
    return await owner_generation(db, settings.generate)


def run_reply(args: argparse.Namespace, settings: Settings) -> int:
    database = db_path(args, settings)

    async def stored_history(db: Database) -> list[HistoryRow]:
        if args.chat is None:
            return []
        if await chats_table.get(db, args.chat) is None:
            raise StorageError(f"no chat {args.chat} is stored in {database}")
        return await messages_table.recent(db, args.chat)

    with BlockingDatabase(database, create=True) as store:
        rows = store.run(stored_history)  # a wrong --chat fails before the model loads
        service = make_service(settings, database, make_engine(settings))
        reply = store.run(lambda db: _answer(db, service, settings, rows, args))
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


async def _answer(
    db: Database,
    service: ReplyService,
    settings: Settings,
    rows: list[HistoryRow],
    args: argparse.Namespace,
) -> Reply:
    """`twin reply`: TEXT as the next message, after the stored chat's rows if any."""
    generation = await _ready(db, service, settings)
    incoming = HistoryRow(YOU, False, int(time.time()), args.text)
    if rows:  # TEXT continues the chat's latest conversation, however old it is
        sender = next((r.sender_id for r in reversed(rows) if not r.is_owner), YOU)
        incoming = HistoryRow(sender, False, rows[-1].date + 1, args.text)
    if args.seed is not None:
        generation = generation.model_copy(update={"seed": args.seed})
    return await service.reply([*rows, incoming], generation, chat_first(args.chat))


def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    database = db_path(args, settings)
    print("Loading the model…", file=sys.stderr, flush=True)
    engine = make_engine(settings)
    service = make_service(settings, database, engine)
    with BlockingDatabase(database, create=True) as store:
        generation = store.run(lambda db: _ready(db, service, settings))
        _converse(store, service, engine, generation, settings.generate)
    return 0


def _converse(
    store: BlockingDatabase,
    service: ReplyService,
    engine: Engine,
    generation: GenerationSettings,
    configured: GenerationSettings,
) -> None:
    """The terminal conversation, on one connection and one event loop."""
    who = "the base model" if engine.adapter is None else "your twin"
    print(f"Talking to {who}. /style to see or set knobs (/style temperature 0.9), /quit to leave.")
    history: list[HistoryRow] = []
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            print()
            return
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line.startswith("/style"):
            generation = _style_command(line, configured, generation, store)
            continue
        history.append(HistoryRow(YOU, False, int(time.time()), line))
        try:
            reply = store.run(lambda _, knobs=generation: service.reply(history, knobs))
        except DegenerateReply as err:
            print(f"(no reply: {err})")
            continue
        for message in reply.messages:
            print(f"twin> {message}")
        history.append(HistoryRow(0, True, int(time.time()), "\n".join(reply.messages)))


def _style_command(
    line: str, configured: GenerationSettings, current: GenerationSettings, store: BlockingDatabase
) -> GenerationSettings:
    parts = line.split()
    if len(parts) == 1:
        print(describe_knobs(current))
        return current
    if parts[1] == "reset":
        store.run(lambda db: settings_table.delete(db, settings_table.STYLE))
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
    store.run(lambda db: settings_table.set_knob(db, name, value))
    print(f"{name} = {value}")
    return store.run(lambda db: owner_generation(db, configured))
