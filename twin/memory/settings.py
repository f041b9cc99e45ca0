"""The `[memory]` section: what the twin recalls of its owner's past for a reply.

A plain pydantic model, apart from the memory code, so that reading the configuration
never opens the index. Each field's description is its comment in config.toml.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MemorySettings(BaseModel):
    """Your own past exchanges and facts, in the prompt of every reply."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description=(
            "Recall how you answered similar messages before (and your facts) for each reply.\n"
            "Off (TWIN_MEMORY__ENABLED=false): neither trained nor served with it."
        ),
    )
    k: int = Field(3, ge=0, le=20, description="How many past exchanges a reply recalls.")
    tokens: int = Field(
        160, ge=0, description="At most this many tokens of recalled exchanges per prompt."
    )
    facts: str = Field(
        "",
        description=(
            "A few lines about you (where you live, what you do, what people call you), put in\n"
            "every prompt. /facts in the bot shows, sets or clears them and wins over this."
        ),
        examples=["Живу в Казани, работаю бэкендером, все зовут Тёма."],
    )
    share_with_bot_users: bool = Field(
        False,
        description=(
            "Let the bot's conversations with other people recall your exchanges with anyone.\n"
            "Off: they recall only your own chat with that person (your replies to one person\n"
            "can tell things about another). Drafts and your own bot chat recall everything;\n"
            "replies sent in auto mode only their own chat."
        ),
    )
