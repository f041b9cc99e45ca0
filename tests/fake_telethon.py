"""A Telethon client that answers from a script instead of Telegram's servers.

It is Telethon's real `TelegramClient` (real `iter_dialogs`, `iter_messages`
pagination, `send_message`, event builders and dispatch); only `__call__`, the one
place requests leave for the network, answers them from in-memory chats. Tests push
updates through Telethon's own `_dispatch_update`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from telethon import TelegramClient, errors, functions, utils
from telethon.tl import types

OWNER = 700100200


def user(user_id: int, first_name: str, **flags: Any) -> types.User:
    return types.User(id=user_id, access_hash=user_id * 7, first_name=first_name, **flags)


class ScriptedTelegram(TelegramClient):
    def __init__(self, me: types.User, people: list[types.User]) -> None:
        super().__init__(None, 1, "not-a-real-hash")
        self.me = me
        self.people = {p.id: p for p in people}
        self.history: dict[int, list[types.Message]] = {p.id: [] for p in people}
        self.sent: list[tuple[int, str]] = []  # (peer user id, text) of every send
        self.send_requests: list[Any] = []
        self.requests: list[Any] = []
        self.muted: set[int] = set()
        self.flood_on_page: dict[int, int] = {}  # GetHistory call number -> wait seconds
        # Send number (1-based) -> an error to raise instead, before (or, "after", once
        # the message is in the chat) the send: a lost answer, a crash mid-reply.
        self.fail_send: dict[int, str] = {}
        self.random_ids: set[int] = set()  # Telegram sends a random id once
        self._sends = 0
        self._ids = itertools.count(10_000)
        self._pts = itertools.count(1)
        self._history_calls = 0

    # -- making history ----------------------------------------------------------------

    def message(
        self, peer: int, text: str, out: bool = False, at: float | None = None, **extra: Any
    ) -> types.Message:
        """A message in the chat with `peer` (from them, or from the owner if `out`)."""
        message = types.Message(
            id=next(self._ids),
            peer_id=types.PeerUser(peer),
            date=datetime.fromtimestamp(at, UTC) if at else datetime.now(UTC),
            message=text,
            out=out,
            from_id=types.PeerUser(OWNER if out else peer),
            **extra,
        )
        self.history[peer].append(message)
        return message

    async def arrive(self, message: types.Message) -> None:
        """Deliver a message as a live update, through Telethon's dispatch (with the
        entities Telethon's update handling would have attached)."""
        update = types.UpdateNewMessage(message, next(self._pts), 1)
        update._entities = {utils.get_peer_id(u): u for u in [*self.people.values(), self.me]}
        await self._dispatch_update(update)

    # -- the network -------------------------------------------------------------------

    async def connect(self) -> None:  # nothing to connect to
        return None

    def is_connected(self) -> bool:
        return True

    async def is_user_authorized(self) -> bool:
        return True

    async def disconnect(self) -> None:
        return None

    async def get_input_entity(self, peer: Any) -> types.TypeInputPeer:
        user_id = getattr(peer, "user_id", getattr(peer, "id", peer))
        if user_id == OWNER:
            return types.InputPeerSelf()
        return types.InputPeerUser(int(user_id), int(user_id) * 7)

    async def __call__(
        self, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None
    ) -> Any:
        self.requests.append(request)
        if isinstance(request, functions.users.GetUsersRequest):
            found = []
            for wanted in request.id:
                if isinstance(wanted, types.InputUserSelf):
                    found.append(self.me)
                elif getattr(wanted, "user_id", None) in self.people:
                    found.append(self.people[wanted.user_id])
            return found
        if isinstance(request, functions.messages.GetDialogsRequest):
            return self._dialogs()
        if isinstance(request, functions.messages.GetHistoryRequest):
            self._history_calls += 1
            wait = self.flood_on_page.pop(self._history_calls, None)
            if wait is not None:
                raise errors.FloodWaitError(request=request, capture=wait)
            return self._history(request)
        if isinstance(request, functions.messages.SendMessageRequest):
            self._sends += 1
            failure = self.fail_send.pop(self._sends, None)
            if failure == "before":
                raise ConnectionError("the network went away before the send")
            if request.random_id in self.random_ids:
                raise errors.RandomIdDuplicateError(request=request)
            self.random_ids.add(request.random_id)
            peer = request.peer.user_id
            sent = self.message(peer, request.message, out=True)
            self.sent.append((peer, request.message))
            self.send_requests.append(request)
            if failure == "after":
                raise ConnectionError("the answer was lost after the send")
            return types.UpdateShortSentMessage(
                id=sent.id, pts=next(self._pts), pts_count=1, date=sent.date, out=True
            )
        if isinstance(request, functions.account.GetNotifySettingsRequest):
            peer = request.peer.peer.user_id
            until = datetime(2100, 1, 1, tzinfo=UTC) if peer in self.muted else None
            return types.PeerNotifySettings(mute_until=until)
        raise NotImplementedError(f"the script has no answer to {type(request).__name__}")

    def _dialogs(self) -> types.messages.Dialogs:
        dialogs, tops = [], []
        for peer, messages in self.history.items():
            if not messages:
                continue
            top = max(messages, key=lambda m: m.id)
            tops.append(top)
            dialogs.append(
                types.Dialog(
                    peer=types.PeerUser(peer),
                    top_message=top.id,
                    read_inbox_max_id=top.id,
                    read_outbox_max_id=top.id,
                    unread_count=0,
                    unread_mentions_count=0,
                    unread_reactions_count=0,
                    unread_poll_votes_count=0,
                    notify_settings=types.PeerNotifySettings(),
                )
            )
        return types.messages.Dialogs(
            dialogs=dialogs, messages=tops, chats=[], users=[*self.people.values(), self.me]
        )

    def _history(
        self, request: functions.messages.GetHistoryRequest
    ) -> types.messages.MessagesSlice:
        """Newest first below offset_id (the only direction twin reads), above min_id."""
        peer = request.peer.user_id
        chosen = [
            m
            for m in sorted(self.history[peer], key=lambda m: -m.id)
            if m.id > request.min_id
            and (not request.offset_id or m.id < request.offset_id)
            and (not request.max_id or m.id < request.max_id)
        ]
        page = chosen[request.add_offset : request.add_offset + request.limit]
        return types.messages.MessagesSlice(
            count=len(self.history[peer]),
            messages=page,
            topics=[],
            chats=[],
            users=[self.people[peer], self.me],
        )
