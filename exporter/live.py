"""The userbot while `twin run` runs: every private message stored as it arrives, the
draft workflow told about it, and replies sent as the owner."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telethon import TelegramClient, errors, events, functions, utils
from telethon.tl import types

from exporter import ingest
from exporter.sync import is_person
from exporter.telethon_messages import message_row
from storage import Database
from storage import chats as chats_table
from storage import messages as messages_table
from storage import people as people_table

log = logging.getLogger(__name__)
MUTE_CACHE_SECONDS = 600


@dataclass(frozen=True)
class Incoming:
    """A person wrote to the owner."""

    chat_id: int
    message_id: int
    text: str
    media: str | None  # photo, sticker, ... (storage's media kinds)
    media_detail: str | None
    name: str


@dataclass(frozen=True)
class Outgoing:
    """The owner (or twin as the owner) wrote in a chat."""

    chat_id: int
    message_id: int
    text: str


class LiveUserbot:
    def __init__(
        self,
        client: TelegramClient,
        db: Database,
        owner_id: int,
        on_incoming: Callable[[Incoming], Awaitable[None]],
        on_outgoing: Callable[[Outgoing], Awaitable[None]],
        on_owner_words: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.db = db
        self.owner_id = owner_id
        self.on_incoming = on_incoming
        self.on_outgoing = on_outgoing
        # Told the chat each time the owner's own words there are stored or edited
        # (typed on his phone, or a draft he approved): his history grew.
        self.on_owner_words = on_owner_words
        self._muted: dict[int, tuple[float, bool]] = {}

    def attach(self) -> None:
        self.client.add_event_handler(self._new_message, events.NewMessage())
        self.client.add_event_handler(self._edited, events.MessageEdited())

    async def _store(self, message: types.Message, name: str | None, by_twin: bool = False) -> bool:
        row = message_row(message, self.owner_id)
        if row is None:
            return False
        async with self.db.transaction():
            await chats_table.upsert(self.db, chats_table.Chat(row.chat_id, "personal_chat", name))
            if name and not message.out and row.sender_id is not None:
                await people_table.upsert_names(self.db, {row.sender_id: name})
            await ingest.store(self.db, [row])
            if by_twin:  # in the same transaction: never stored as the owner's own words
                await messages_table.mark_by_twin(self.db, row.chat_id, row.message_id)
        if row.is_owner and not by_twin:
            self._owner_wrote(row.chat_id)
        return True

    def _owner_wrote(self, chat_id: int) -> None:
        if self.on_owner_words is not None:
            self.on_owner_words(chat_id)

    async def _new_message(self, event: events.NewMessage.Event) -> None:
        if not event.is_private:
            return
        message = event.message
        if message.out:
            # Only chats with people, as `twin sync` stores: what the owner writes to a
            # bot or to Saved Messages is no conversation, and no training data.
            if not is_person(await event.get_chat()):
                return
            if await self._store(message, None):
                await self.on_outgoing(Outgoing(event.chat_id, message.id, message.message or ""))
            return
        sender = await event.get_sender()
        if not is_person(sender):
            return
        name = utils.get_display_name(sender)
        if not await self._store(message, name):
            return
        if await self.is_muted(event.chat_id):
            log.info("message in muted chat %s: stored, no draft", event.chat_id)
            return
        row = message_row(message, self.owner_id)
        if row is not None:
            await self.on_incoming(
                Incoming(event.chat_id, message.id, row.text, row.media, row.media_detail, name)
            )

    async def _edited(self, event: events.MessageEdited.Event) -> None:
        if event.is_private:
            row = message_row(event.message, self.owner_id)
            if row is not None:
                async with self.db.transaction():
                    await messages_table.apply_edits(self.db, [row])
                if row.is_owner:
                    self._owner_wrote(row.chat_id)

    async def is_muted(self, chat_id: int) -> bool:
        """Muted chats get no drafts (cached for a while: one request per chat)."""
        cached = self._muted.get(chat_id)
        if cached is not None and time.monotonic() - cached[0] < MUTE_CACHE_SECONDS:
            return cached[1]
        peer = await self.client.get_input_entity(chat_id)
        settings = await self.client(
            functions.account.GetNotifySettingsRequest(types.InputNotifyPeer(peer))
        )
        until = settings.mute_until
        muted = until is not None and until.timestamp() > time.time()
        self._muted[chat_id] = (time.monotonic(), muted)
        return muted

    async def send_part(
        self, chat_id: int, text: str, random_id: int, by_twin: bool = False
    ) -> int | None:
        """Send one message as the owner, exactly as written: no markdown parsing (so
        `__init__` stays `__init__` and `[x](url)` is no hidden link) and no link
        preview. Telegram sends a random id once: repeated after a crash, it answers
        that the id was used, and None says so (the message went out before). What is
        sent is stored as the owner's message, marked when the twin sent it alone."""
        peer = await self.client.get_input_entity(chat_id)
        request = functions.messages.SendMessageRequest(
            peer=peer, message=text, random_id=random_id, no_webpage=True
        )
        try:
            result = await self.client(request)
        except errors.RandomIdDuplicateError:
            return None
        if isinstance(result, types.UpdateShortSentMessage):  # what a private chat gets
            message = types.Message(
                id=result.id,
                peer_id=utils.get_peer(peer),
                message=text,
                date=result.date,
                out=True,
                media=result.media,
                entities=result.entities,
            )
        else:
            message = self.client._get_response_message(request, result, peer)
        await self._store(message, None, by_twin)
        return int(message.id)

    async def find_sent(self, chat_id: int, text: str, after_id: int) -> int | None:
        """The id of the owner's first message in the chat after `after_id` whose text is
        exactly `text`: did a part of an interrupted send go out?"""
        found = None
        async for message in self.client.iter_messages(chat_id, min_id=after_id, limit=200):
            if message.out and (message.message or "") == text:
                found = message.id  # newest first: the last match is the earliest
        return found
