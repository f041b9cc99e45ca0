"""`twin serve`: the reply engine behind an OpenAI-compatible HTTP API (aiohttp).

    POST /v1/chat/completions   a reply, whole or streamed (server-sent events)
    GET  /v1/models             the one model, "twin"

aiohttp because twin has it already (aiogram runs on it) and it streams, parses and
shuts down gracefully on its own: FastAPI and uvicorn would add two dependencies for
the same three routes. The model is loaded once; replies are generated one at a time
in arrival order by the reply service, with at most `serve.queue` waiting (429
beyond). Every request needs the bearer token, compared in constant time; every
error is OpenAI's JSON error object with a 4xx status (a 500 only for a fault of
twin's own, without a traceback). SIGTERM stops new connections and lets the replies
in flight finish. Nothing of what is said is logged: only sizes and times.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from storage import Database
from twin.api.chat import MODEL, APIError, ChatRequest, read_request
from twin.api.settings import ServeSettings
from twin.engine.errors import DegenerateReply
from twin.engine.generate import Reply
from twin.engine.service import ReplyService
from twin.engine.settings import GenerationSettings, new_tokens
from twin.memory.scopes import EVERYONE, NO_RECALL, Scope

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Serving:
    """What the handlers share: the settings, the token, the generation defaults."""

    def __init__(
        self, settings: ServeSettings, token: str | None, generation: GenerationSettings
    ) -> None:
        self.settings = settings
        self.token = token
        self.generation = generation
        self.admitted = 0  # requests being answered or waiting for the model


SERVICE = web.AppKey("service", ReplyService)
DB = web.AppKey("db", Database)
CONFIG = web.AppKey("config", Serving)


class _ClientGone(Exception):
    """The client of a streamed reply went away: the reply stops being generated."""


def make_app(
    replies: ReplyService,
    db: Database,
    settings: ServeSettings,
    token: str | None,
    generation: GenerationSettings,
) -> web.Application:
    app = web.Application(middlewares=[_errors_as_json, _authorized], client_max_size=1 << 20)
    app[SERVICE] = replies
    app[DB] = db
    app[CONFIG] = Serving(settings, token, generation)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    return app


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as err:
        return web.json_response(err.body, status=err.status, headers=_retry(err.status))
    except web.HTTPException as err:  # aiohttp's own: 404, 405, 413 ...
        if err.status < 400:
            raise
        body = APIError(err.status, err.reason, code=err.reason.lower().replace(" ", "_")).body
        return web.json_response(body, status=err.status)
    except Exception:
        log.exception("serving %s failed", request.path)
        body = APIError(500, "the twin failed on this request", kind="server_error").body
        return web.json_response(body, status=500)


def _retry(status: int) -> dict[str, str]:
    return {"Retry-After": "1"} if status == 429 else {}


@web.middleware
async def _authorized(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[CONFIG].token
    if token is not None:
        sent = request.headers.get("Authorization", "")
        scheme, _, given = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise APIError(
                401,
                "a bearer token is needed: Authorization: Bearer <serve.token>",
                code="invalid_api_key",
            )
    return await handler(request)


async def models(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "twin"}],
        }
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    serving = request.app[CONFIG]
    replies = request.app[SERVICE]
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON") from None
    except RecursionError:  # a body of brackets nested past what the parser descends
        raise APIError(400, "the request body is nested too deeply") from None
    chat = read_request(body, serving.generation)
    if serving.admitted >= serving.settings.queue:
        raise APIError(
            429,
            f"{serving.admitted} requests are with the twin already: try again soon",
            kind="requests",
            code="rate_limit_exceeded",
        )
    _fits(replies, chat)
    serving.admitted += 1
    started = time.perf_counter()
    try:
        await replies.refresh(request.app[DB])  # a newly trained adapter answers from now on
        scope = EVERYONE if serving.settings.recall else NO_RECALL
        how = ""
        if chat.stream:
            response, stayed = await _streamed(request, replies, chat, scope)
            how = " (streamed)" if stayed else " (streamed; the client left before the end)"
        else:
            reply = await _reply(replies, chat, scope)
            response = web.json_response(_completion(reply, chat.generation))
    finally:
        serving.admitted -= 1
    log.info(
        "chat completion: %d messages in, %.1f s%s",
        len(chat.rows),
        time.perf_counter() - started,
        how,
    )
    return response


def _fits(replies: ReplyService, chat: ChatRequest) -> None:
    """The message answered must fit the model with room for the reply (the context
    before it is trimmed to fit, never refused)."""
    engine = replies.engine
    room = engine.max_seq_length - new_tokens(chat.generation)
    asked = engine.count_tokens(chat.rows[-1].text)
    if asked > room:
        raise APIError(
            400,
            f"the last message is {asked} tokens; this model takes {room} with the reply "
            f"({engine.max_seq_length} in all)",
            code="context_length_exceeded",
            param="messages",
        )


async def _reply(
    replies: ReplyService,
    chat: ChatRequest,
    scope: Scope,
    on_text: Callable[[str], None] | None = None,
) -> Reply:
    try:
        return await replies.reply(
            chat.rows, chat.generation, scope, facts=chat.facts, on_text=on_text
        )
    except DegenerateReply as err:
        raise APIError(503, f"the twin found no usable reply: {err}", kind="server_error") from None


def _completion(reply: Reply, generation: GenerationSettings) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": _finish_reason(reply, generation),
            }
        ],
        "usage": _usage(reply),
    }


def _finish_reason(reply: Reply, generation: GenerationSettings) -> str:
    return "length" if reply.tokens >= new_tokens(generation) else "stop"


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.tokens,
        "total_tokens": reply.prompt_tokens + reply.tokens,
    }


async def _streamed(
    request: web.Request, replies: ReplyService, chat: ChatRequest, scope: Scope
) -> tuple[web.StreamResponse, bool]:
    """Server-sent events as OpenAI sends them: the role, the text piece by piece, the
    finish reason (and the usage when asked), then [DONE]; and whether the client stayed
    to the end. The pieces come from the engine's worker thread; a client that leaves
    (a normal event: a closed tab, a stopped script) stops the generation at the next
    token."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    gone = threading.Event()

    def on_text(piece: str) -> None:  # in the worker thread
        if gone.is_set():
            raise _ClientGone
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    task = asyncio.create_task(_reply(replies, chat, scope, on_text))
    task.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    chunk = _chunk_maker()
    try:
        await _send(response, chunk({"role": "assistant", "content": ""}))
        while (piece := await pieces.get()) is not None:
            await _send(response, chunk({"content": piece}))
        try:
            reply = await task
        except APIError as err:  # the status is sent already: the error goes as an event
            await _send(response, err.body)
        except Exception:
            log.exception("a streamed reply failed")
            await _send(response, APIError(500, "the twin failed", kind="server_error").body)
        else:
            await _send(response, chunk({}, _finish_reason(reply, chat.generation)))
            if chat.include_usage:
                await _send(response, {**chunk(None), "choices": [], "usage": _usage(reply)})
        await response.write(b"data: [DONE]\n\n")
    except (ConnectionResetError, asyncio.CancelledError) as err:
        gone.set()  # the worker stops at its next token; what it raises then is no news
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        if isinstance(err, asyncio.CancelledError):
            raise
        return response, False
    return response, True


def _chunk_maker() -> Callable[..., dict[str, Any]]:
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str] | None, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    return chunk


async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
