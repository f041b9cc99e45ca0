"""`twin login` and `twin sync`: the userbot, logged in as you."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from typing import TYPE_CHECKING

from storage import open_database
from twin.commands.common import (
    config_options,
    db_options,
    db_path,
    is_terminal,
    json_options,
    print_json,
)
from twin.memory.index import RefreshReport
from twin.reports import format_memory, next_step
from twin.settings import Settings
from twin.wiring import remember_history, userbot_config

if TYPE_CHECKING:  # Telethon loads for a login or a sync, not for --help
    from exporter.sync import SyncReport


def register(commands: argparse._SubParsersAction) -> None:
    login_parser = commands.add_parser(
        "login",
        parents=[config_options()],
        description="Interactive login (phone, code, 2FA password) with telegram.api_id and "
        "telegram.api_hash. The session is saved 0600 in the data directory.",
    )
    login_parser.set_defaults(run=run_login)
    sync_parser = commands.add_parser(
        "sync",
        parents=[config_options(), db_options(), json_options()],
        description="Incremental: each chat from where the last sync or import stopped. "
        "Safe to interrupt; the next sync goes on from there.",
    )
    sync_parser.set_defaults(run=run_sync)


def run_login(args: argparse.Namespace, settings: Settings) -> int:
    from exporter.userbot import login, make_client

    config = userbot_config(settings)

    async def go() -> str:
        client = make_client(config)
        try:
            me = await login(
                client,
                phone=lambda: input("Phone number (international format): "),
                code=lambda: input("The code Telegram sent you: "),
                password=lambda: getpass.getpass("Two-step verification password: "),
            )
        finally:
            await client.disconnect()
        return f"{me.first_name or ''} {me.last_name or ''}".strip() + f" (id {me.id})"

    who = asyncio.run(go())
    where = (
        "the string session in TWIN_TELEGRAM__SESSION" if config.session else config.session_file
    )
    print(f"Logged in as {who}. The session is in {where}: keep it private.")
    print(next_step("twin sync", "fetch your private chats"))
    return 0


def run_sync(args: argparse.Namespace, settings: Settings) -> int:
    from exporter.sync import sync
    from exporter.userbot import connect, make_client

    config = userbot_config(settings)

    async def go() -> tuple[SyncReport, RefreshReport | None]:
        client = make_client(config)
        await connect(client)
        try:
            async with open_database(db_path(args, settings)) as db:
                report = await sync(client, db, progress=is_terminal())
                return report, await remember_history(db, settings)
        finally:
            await client.disconnect()

    report, memory = asyncio.run(go())
    if args.json:
        print_json({**report.as_dict(), "memory": memory.as_dict() if memory else None})
    else:
        print(
            f"Synced {report.chats} chats: {report.new:,} new messages, {report.updated:,} updated"
        )
        print(format_memory(memory))
        if report.blocked_until:
            print("Telegram asked to slow down: run twin sync again later to go on.")
        else:
            print(next_step("twin train", "then twin run, for drafts of your replies"))
    return 0
