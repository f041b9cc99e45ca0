"""The userbot: twin logged in as the owner through Telethon.

It reads the owner's private chats (sync and live) and sends the replies the owner
approved, as the owner. Its session is full access to the account: it lives in a file
only the owner can read (0600) or in the environment, and is never logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from telethon import TelegramClient
from telethon.sessions import StringSession
from telethon.tl import types


class UserbotError(Exception):
    """The userbot cannot start or log in; the message says what to do."""


@dataclass(frozen=True)
class UserbotConfig:
    api_id: int
    session_file: Path  # <data_dir>/userbot.session, 0600
    api_hash: str = ""
    session: str | None = None  # a Telethon string session, instead of the file

    def __repr__(self) -> str:  # never show the secrets
        return f"UserbotConfig(api_id={self.api_id}, session_file={self.session_file})"


def make_client(config: UserbotConfig) -> TelegramClient:
    if not config.api_id or not config.api_hash:
        raise UserbotError(
            "telegram.api_id and telegram.api_hash are needed for the userbot: get them at "
            "https://my.telegram.org (API development tools), then set TWIN_TELEGRAM__API_ID "
            "and TWIN_TELEGRAM__API_HASH"
        )
    if config.session:
        return TelegramClient(StringSession(config.session), config.api_id, config.api_hash)
    path = config.session_file
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before SQLite opens it: the session is the keys to the account.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    session_name = str(path)[: -len(".session")] if path.suffix == ".session" else str(path)
    return TelegramClient(session_name, config.api_id, config.api_hash)


async def login(
    client: TelegramClient,
    phone: Callable[[], str],
    code: Callable[[], str],
    password: Callable[[], str],
) -> types.User:
    """Interactive first login (phone, the code Telegram sends, the 2FA password)."""
    await client.start(phone=phone, code_callback=code, password=password)
    me = await client.get_me()
    if me is None:
        raise UserbotError("login did not complete")
    return me


async def connect(client: TelegramClient) -> types.User:
    """Connect with the stored session; an error if there is none (twin login first)."""
    await client.connect()
    if not await client.is_user_authorized():
        await client.disconnect()
        raise UserbotError("the userbot is not logged in: run twin login")
    return await client.get_me()
