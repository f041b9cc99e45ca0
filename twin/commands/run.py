"""`twin run`: the bot, scheduled retraining (and the userbot) in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from storage import Database, open_database
from storage import settings as settings_table
from twin.commands.common import config_options, db_options, db_path
from twin.settings import Settings, SettingsError
from twin.wiring import bot_config, make_service, userbot_config

if TYPE_CHECKING:  # aiogram, Telethon and torch load when the bot starts, not for --help
    from bot.drafts import DraftWorkflow
    from exporter.live import LiveUserbot
    from twin.memory.keeper import MemoryKeeper


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        parents=[config_options(), db_options()],
        description="Serve the twin on Telegram: chat with the clone, /retrain, /style, "
        "/status; retrain nightly. Stops cleanly on Ctrl-C or SIGTERM.",
    )
    parser.set_defaults(run=run)


def userbot_starter(
    settings: Settings, db: Database, memory: MemoryKeeper
) -> Callable[[DraftWorkflow], Awaitable[LiveUserbot]] | None:
    """How `twin run` connects the userbot, or None when it is off or not set up."""
    config = userbot_config(settings)
    logged_in = bool(config.session) or config.session_file.exists()
    enabled = settings.userbot.enabled
    if enabled is False or (
        enabled == "auto" and not (config.api_id and config.api_hash and logged_in)
    ):
        logging.getLogger(__name__).info("userbot off (twin login to draft replies to your chats)")
        return None

    async def start(workflow: DraftWorkflow) -> LiveUserbot:
        from exporter.live import LiveUserbot
        from exporter.userbot import UserbotError, connect, make_client

        client = make_client(config)
        me = await connect(client)
        if me.id != workflow.owner_id:
            await client.disconnect()
            raise UserbotError(
                f"the userbot is logged in as user {me.id}, but the owner is user "
                f"{workflow.owner_id}: it would send other people's messages to the wrong "
                "account; log in as the owner (twin login) or fix telegram.owner_id"
            )
        live = LiveUserbot(
            client, db, me.id, workflow.on_incoming, workflow.on_outgoing, memory.chat_changed
        )
        live.attach()
        logging.getLogger(__name__).info("userbot listening as %s", me.id)
        return live

    return start


async def _owner(db: Database, configured: int | None) -> int:
    """The owner: telegram.owner_id and the database's owner must agree (a typo in the
    setting would send the owner's drafts, and the Send button, to someone else)."""
    stored = await settings_table.get(db, settings_table.OWNER_ID)
    if None not in (configured, stored) and configured != stored:
        raise SettingsError(
            f"telegram.owner_id is {configured}, but this database holds the chats of user "
            f"{stored}; fix telegram.owner_id (or use the database of that account: --db)"
        )
    owner = configured if configured is not None else stored
    if owner is None:
        raise SettingsError(
            "who is the owner? import your chats first (twin import) or set telegram.owner_id"
        )
    return int(owner)


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve(args, settings, db_path(args, settings)))
    return 0


async def _serve(args: argparse.Namespace, settings: Settings, database: Path) -> None:
    from bot.app import run_bot
    from twin.memory.keeper import MemoryKeeper

    async with open_database(database) as db:
        config = bot_config(
            settings, await _owner(db, settings.telegram.owner_id), database, args.config
        )
        replies = make_service(settings, database)
        memory = MemoryKeeper(
            db, settings.memory, settings.dataset, settings.prompt.burst_separator
        )
        memory.start()
        try:
            await run_bot(config, db, replies, userbot_starter(settings, db, memory))
        finally:
            await memory.stop()
            await replies.close()
