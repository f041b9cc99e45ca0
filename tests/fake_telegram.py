"""A fake Telegram Bot API server on 127.0.0.1, for testing the real bot over real HTTP.

It speaks the methods twin's bot uses (getMe, long-polling getUpdates, sendMessage,
editMessageText, deleteMessage, answerCallbackQuery, setMyCommands, deleteWebhook,
sendChatAction, sendPhoto, editMessageReplyMarkup), enforces the limits the real one
enforces (4096 characters, "message is not modified"), can answer 429 with
retry_after or a 502 as a proxy in trouble does, and records every call for the test to assert on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT = {"id": 424242, "is_bot": True, "first_name": "Twin", "username": "twin_test_bot"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    ok: bool = True  # False: answered with an error (a 429, a 400)


class FakeTelegram:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._last: dict[str, Any] = {}
        self._message_ids = itertools.count(1000)
        self._arrived = asyncio.Event()
        self._texts: dict[tuple[int, int], str] = {}  # (chat, message) -> current text
        self.too_many_requests: dict[str, int] = {}  # method -> how many 429s to answer
        self.retry_after = 1
        self.bad_gateways: dict[str, int] = {}  # method -> how many 502s to answer
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._arrived.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what users do -------------------------------------------------------------------

    def send(
        self,
        user_id: int,
        text: str,
        first_name: str = "Friend",
        group: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """A user writes to the bot (in `group`, if given; as a reply to the bot's message
        `reply_to`, if given); returns the message id."""
        message_id = next(self._message_ids)
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        chat = (
            {"id": user_id, "type": "private", "first_name": first_name}
            if group is None
            else {"id": group, "type": "supergroup", "title": "A group"}
        )
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            message["reply_to_message"] = {
                "message_id": reply_to,
                "date": int(time.time()),
                "chat": chat,
                "from": BOT,
                "text": self._texts.get((int(chat["id"]), reply_to), ""),
            }
        self._push({"message": message})
        return message_id

    def deliver_again(self) -> None:
        """The last update once more, as Telegram sends one whose receipt it missed."""
        self._push({k: v for k, v in self._last.items() if k != "update_id"})

    def press(self, user_id: int, message_id: int, data: str) -> None:
        """A user presses an inline button under one of the bot's messages."""
        user = {"id": user_id, "is_bot": False, "first_name": "Owner"}
        self._push(
            {
                "callback_query": {
                    "id": str(next(self._message_ids)),
                    "from": user,
                    "chat_instance": "1",
                    "data": data,
                    "message": {
                        "message_id": message_id,
                        "date": int(time.time()),
                        "chat": {"id": user_id, "type": "private"},
                        "from": BOT,
                        "text": self._texts.get((user_id, message_id), ""),
                    },
                }
            }
        )

    def _push(self, update: dict[str, Any]) -> None:
        update["update_id"] = next(self._update_ids)
        self._last = update
        self._updates.append(update)
        self._arrived.set()

    # -- what the test reads ---------------------------------------------------------------

    def sent(self, chat_id: int | None = None, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [
            c.params
            for c in self.calls
            if c.method == method
            and c.ok
            and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
        ]

    def texts(self, chat_id: int) -> list[str]:
        return [p["text"] for p in self.sent(chat_id)]

    def text_of(self, chat_id: int, message_id: int) -> str:
        return self._texts.get((chat_id, message_id), "")

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"timed out; calls so far: {[(c.method, c.params) for c in self.calls]}"
        )

    # -- the API ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            if hasattr(value, "file"):
                params[key] = {"filename": value.filename, "size": len(value.file.read())}
            else:
                params[key] = value
        call = Call(method, params)
        self.calls.append(call)
        if self.too_many_requests.get(method):
            self.too_many_requests[method] -= 1
            call.ok = False
            return _error(
                429,
                f"Too Many Requests: retry after {self.retry_after}",
                {"retry_after": self.retry_after},
            )
        if self.bad_gateways.get(method):
            self.bad_gateways[method] -= 1
            call.ok = False
            return _error(502, "Bad Gateway")
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            call.ok = False
            return _error(404, f"Not Found: method {method} is not in the fake")
        response = await handler(params)
        call.ok = response.status == 200
        return response

    async def _getMe(self, params: dict[str, Any]) -> web.Response:
        return _ok(BOT)

    async def _deleteWebhook(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _setMyCommands(self, params: dict[str, Any]) -> web.Response:
        commands = json.loads(params["commands"])
        for command in commands:
            if (
                not 1 <= len(command["command"]) <= 32
                or not 1 <= len(command["description"]) <= 256
            ):
                return _error(400, "Bad Request: bad command")
        return _ok(True)

    async def _getUpdates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset", 0) or 0)
        timeout = float(params.get("timeout", 0) or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        return _ok(self._updates[:100])

    async def _sendChatAction(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _sendMessage(self, params: dict[str, Any]) -> web.Response:
        text = params.get("text", "")
        if not 1 <= len(text) <= 4096:
            return _error(
                400,
                "Bad Request: message is too long"
                if text
                else "Bad Request: message text is empty",
            )
        message = self._message(int(params["chat_id"]), text, params.get("reply_markup"))
        params["_message_id"] = message["message_id"]  # for tests that press its buttons
        return _ok(message)

    async def _sendPhoto(self, params: dict[str, Any]) -> web.Response:
        message = self._message(int(params["chat_id"]), params.get("caption", ""), None)
        message["photo"] = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
        return _ok(message)

    async def _editMessageText(self, params: dict[str, Any]) -> web.Response:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key not in self._texts:
            return _error(400, "Bad Request: message to edit not found")
        if self._texts[key] == params["text"] and "reply_markup" not in params:
            return _error(400, "Bad Request: message is not modified")
        self._texts[key] = params["text"]
        return _ok({**self._message(key[0], params["text"], params.get("reply_markup"), key[1])})

    async def _editMessageReplyMarkup(self, params: dict[str, Any]) -> web.Response:
        key = (int(params["chat_id"]), int(params["message_id"]))
        return _ok(
            self._message(key[0], self._texts.get(key, ""), params.get("reply_markup"), key[1])
        )

    async def _deleteMessage(self, params: dict[str, Any]) -> web.Response:
        self._texts.pop((int(params["chat_id"]), int(params["message_id"])), None)
        return _ok(True)

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> web.Response:
        if len(params.get("text", "")) > 200:
            return _error(400, "Bad Request: text is too long")
        return _ok(True)

    def _message(
        self, chat_id: int, text: str, markup: str | None, message_id: int | None = None
    ) -> dict[str, Any]:
        message_id = message_id or next(self._message_ids)
        self._texts[(chat_id, message_id)] = text
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": BOT,
            "text": text,
        }
        if markup:
            message["reply_markup"] = json.loads(markup)
        return message


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
