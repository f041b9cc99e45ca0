"""An OpenAI chat-completions request read as a conversation with the owner.

`user` messages are the other person's turns, `assistant` messages the owner's, and
`system` (or `developer`) messages the owner's facts for this request. They become
the history rows a Telegram chat gives the reply engine, all of one conversation, so
the prompt is built as it is for a chat: consecutive messages of one side merged into
a turn, personal data scrubbed, the context trimmed to its token budget. The last
message is the one answered and must be the other person's.

Anything else is refused with the error OpenAI would give, as one `APIError`:
malformed JSON, an unknown role, content that is not text, no message to answer,
values out of range.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from storage.rows import HistoryRow
from twin.engine.settings import GenerationSettings

MODEL = "twin"  # the one model this server serves
ROLES = {"user": False, "assistant": True}  # role -> is the owner
SYSTEM_ROLES = ("system", "developer")
OTHER, OWNER = 1, 0  # sender ids of the two sides (the rows' only use of them)
MAX_STOPS = 4


class APIError(Exception):
    """A request refused: HTTP status and OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class ChatRequest:
    rows: list[HistoryRow]  # the conversation, oldest first; the last is answered
    facts: str | None  # the system messages, or None: the owner's own facts
    generation: GenerationSettings
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the counts


def read_request(body: Any, defaults: GenerationSettings) -> ChatRequest:
    """The request `body` (parsed JSON) with the server's generation settings under it."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    model = body.get("model", MODEL)
    if model != MODEL:
        raise APIError(
            404,
            f"the model {model!r} does not exist: this server serves {MODEL!r}",
            code="model_not_found",
            param="model",
        )
    rows, facts = _conversation(body.get("messages"))
    if body.get("n", 1) != 1:
        raise APIError(400, "n must be 1: one reply at a time", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(400, "stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise APIError(400, "stream_options must be an object", param="stream_options")
    return ChatRequest(
        rows=rows,
        facts=facts,
        generation=_generation(body, defaults),
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
    )


def _conversation(messages: Any) -> tuple[list[HistoryRow], str | None]:
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages must be a non-empty list", param="messages")
    now = int(time.time())
    rows: list[HistoryRow] = []
    facts: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{where} must be an object", param=where)
        role = message.get("role")
        text = _text(message.get("content"), f"{where}.content")
        if role in SYSTEM_ROLES:
            if text.strip():
                facts.append(text.strip())
        elif role in ROLES:
            is_owner = ROLES[role]
            rows.append(HistoryRow(OWNER if is_owner else OTHER, is_owner, now, text))
        else:
            raise APIError(
                400,
                f"{where}.role {role!r} is not one of system, developer, user, assistant",
                param=f"{where}.role",
            )
    if not rows or rows[-1].is_owner or not rows[-1].text.strip():
        raise APIError(
            400,
            "the last message must be the user's, with text: the twin answers it",
            param="messages",
        )
    return rows, "\n".join(facts) if facts else None


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (no images or audio)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise APIError(400, f"{where}: only text parts are understood", param=where)
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    if content is None:
        return ""
    raise APIError(400, f"{where} must be a string or a list of text parts", param=where)


def _generation(body: dict[str, Any], defaults: GenerationSettings) -> GenerationSettings:
    """The server's settings with the request's sampling on top, validated."""
    update: dict[str, Any] = {}
    for name, field in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed")):
        if body.get(name) is not None:
            update[field] = body[name]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        update["max_new_tokens"] = limit
        update["length"] = "normal"  # the client's limit, not a /style length's multiple
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > MAX_STOPS
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise APIError(400, f"stop must be a string or up to {MAX_STOPS} strings", param="stop")
        update["stop"] = stops
    try:
        return GenerationSettings.model_validate({**defaults.model_dump(), **update})
    except ValidationError as err:
        error = err.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "request"
        asked = {"max_new_tokens": "max_tokens"}.get(name, name)
        raise APIError(400, f"{asked}: {error['msg']}", param=asked) from None
