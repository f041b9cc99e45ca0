"""The `[dataset]` and `[prompt]` sections: which chats become samples, how, and the
text the model sees.

Plain pydantic models, apart from the code that uses them, so that reading the
configuration never loads the dataset code. Each field's description is its comment
in config.toml.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

# The seed project's template: the context section, the other person's message, then
# the owner's reply. {memory} is empty without memory, so the text is then the seed's.
DEFAULT_TEMPLATE = (
    "You (I) are chatting with a user R. Write a reply to his message.\n\n"
    "{memory}### Your previous communication:\n{context}\n\n"
    "### His new message:\n{instruction}\n\n"
    "### Your response:\n"
)
# When there is no earlier conversation (its first message) the context section goes.
DEFAULT_TEMPLATE_NO_CONTEXT = (
    "You (I) are chatting with a user R. Write a reply to his message.\n\n"
    "{memory}### His new message:\n{instruction}\n\n"
    "### Your response:\n"
)
# What {memory} holds when there is something to remember: the owner's facts, then
# his past exchanges with messages like this one.
DEFAULT_FACTS_TEMPLATE = "### About you:\n{facts}\n\n"
DEFAULT_MEMORY_TEMPLATE = "### How you answered similar messages before:\n{exchanges}\n\n"


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


class PromptSettings(BaseModel):
    """The text the model sees. Changing any of this makes trained adapters useless."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        DEFAULT_TEMPLATE,
        description=(
            "{context} is the earlier conversation, {instruction} the message to answer,\n"
            "{memory} what the twin remembers (the [memory] section; empty without it)."
        ),
    )
    template_no_context: str = Field(
        DEFAULT_TEMPLATE_NO_CONTEXT, description="For a conversation's first message."
    )
    facts_template: str = Field(
        DEFAULT_FACTS_TEMPLATE, description="{memory}'s first part: your facts (memory.facts)."
    )
    memory_template: str = Field(
        DEFAULT_MEMORY_TEMPLATE,
        description="{memory}'s second part: your past exchanges, recalled for this message.",
    )
    owner_tag: str = Field("I", description="Speaker tags of the turns in {context}.")
    other_tag: str = "R"
    burst_separator: str = Field(
        "\n", description="Joins the messages of one burst into one turn; a reply is split on it."
    )

    @model_validator(mode="after")
    def _check_templates(self) -> PromptSettings:
        for name, fields, required in (
            ("template", ("context", "instruction", "memory"), "instruction"),
            ("template_no_context", ("instruction", "memory"), "instruction"),
            ("facts_template", ("facts",), "facts"),
            ("memory_template", ("exchanges",), "exchanges"),
        ):
            text = getattr(self, name)
            try:
                text.format(**{f: "" for f in fields})
            except (KeyError, IndexError, ValueError) as err:
                named = " and ".join(f"{{{f}}}" for f in fields)
                raise ValueError(f"{name} may only use {named}: {err}") from None
            if f"{{{required}}}" not in text:
                raise ValueError(f"{name} must contain {{{required}}}")
        if not self.burst_separator:
            raise ValueError("burst_separator must not be empty")
        return self
