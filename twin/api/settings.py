"""The `[serve]` section: where `twin serve` listens and who may ask it.

A plain pydantic model, apart from the server, so that reading the configuration never
loads aiohttp or the model. Each field's description is its comment in config.toml.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

LOCALHOST = "127.0.0.1"


class ServeSettings(BaseModel):
    """`twin serve`: the OpenAI-compatible API on the reply engine."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(LOCALHOST, description="Where to listen (--host). 0.0.0.0: every interface.")
    port: int = Field(8000, ge=1, le=65535, description="The port (--port).")
    token: SecretStr | None = Field(
        None,
        description=(
            "The bearer token clients send (Authorization: Bearer ...). A secret: set\n"
            "TWIN_SERVE__TOKEN, or put it in a file only you can read and name it in token_file."
        ),
        json_schema_extra={"secret": True},
    )
    token_file: Path | None = Field(None, examples=["/home/me/.config/twin/serve_token"])
    no_token: bool = Field(
        False,
        description=(
            "Serve without a token: only on 127.0.0.1, and only when set here (anyone on\n"
            "this machine can then talk to your twin)."
        ),
    )
    queue: int = Field(
        8,
        ge=1,
        description=(
            "Requests waiting for the model at most (one reply is generated at a time);\n"
            "more get 429 Too Many Requests."
        ),
    )
    recall: bool = Field(
        False,
        description=(
            "Let API replies recall your past exchanges with everyone (memory). Off: they get\n"
            "your facts (or the request's system message) and nothing of your chats."
        ),
    )
