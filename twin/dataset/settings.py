"""The `[dataset]` section: which chats become samples, and how.

Plain pydantic models, apart from the code that uses them, so that reading the
configuration never loads the dataset code. Each field's description is its comment
in config.toml.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class DatasetSettings(BaseModel):
    """How your chats become training samples (`twin dataset`)."""

    model_config = ConfigDict(extra="forbid")

    session_gap: int = Field(
        86400,
        gt=0,
        description=(
            'A silence longer than this starts a new conversation: seconds, or "90m", "24h", "2d".'
        ),
        json_schema_extra={"shown": "24h"},
    )
    include_groups: bool = Field(
        False,
        description=(
            "Personal chats only by default; bots, channels and saved messages are never used."
        ),
    )
    include_chats: list[int | str] = Field(
        [], description="Chat ids or titles. A non-empty include list means only those chats."
    )
    exclude_chats: list[int | str] = Field([], description="Chat ids or titles never used.")
    context_tokens: int = Field(
        384,
        ge=0,
        description=(
            "How much earlier conversation a sample (and a reply) sees: tokens of the "
            "model's tokenizer once the model is prepared, otherwise characters at "
            "chars_per_token."
        ),
    )
    chars_per_token: float = Field(4.0, gt=0)
    drop_openers: bool = Field(
        False,
        description="Owner messages that open a conversation have no message to answer; drop them?",
    )
    min_response_chars: int = Field(
        1, ge=0, description="Replies outside these lengths (characters) are left out."
    )
    max_response_chars: int = Field(1000, ge=1)
    other_turns: bool = Field(
        False,
        description=(
            "Also learn from the other people's turns (the conversation seen from their "
            "side; training conversations only): more about how conversations go, less "
            "training time for your own replies."
        ),
    )
    val_fraction: float = Field(
        0.1,
        description=(
            "The newest share of conversations, held out to measure the twin on unseen replies."
        ),
    )
    workers: int = Field(
        0,
        ge=0,
        description="Worker processes for large histories (100k+ messages); 0: one per core.",
    )

    @field_validator("session_gap", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError("a duration such as 86400, '90m', '24h' or '2d'")
            return int(float(match.group(1)) * _UNITS[match.group(2)])
        return value

    @field_validator("val_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError("must be at least 0 and below 1")
        return value
