"""The bot's sections: `[bot]` (who may chat with the twin), `[userbot]` (drafts for
your real chats) and `[retrain]` (when training runs by itself).

Plain pydantic models, so that reading the configuration never loads aiogram. Each
field's description is its comment in config.toml.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BotSettings(BaseModel):
    """The bot that answers in your style."""

    model_config = ConfigDict(extra="forbid")

    allow: Literal["owner", "everyone"] | list[int] = Field(
        "owner",
        description=(
            'Who may chat with your twin through the bot: "owner", "everyone", or a list of\n'
            "Telegram user ids ([123, 456]). Everyone else gets one polite refusal."
        ),
    )
    history_limit: int = Field(
        60,
        ge=1,
        description="How many earlier messages of a bot chat the twin reads before it answers.",
    )

    groups: bool = Field(
        False,
        description=(
            "Answer in group chats too, only when addressed (its @username or name, or a reply\n"
            "to its message) and never to a command. Off: the bot talks only in private chats."
        ),
    )
    group_pause: float = Field(
        60.0,
        ge=0,
        description="In a group, the twin answers at most once in this many seconds.",
    )


class UserbotSettings(BaseModel):
    """The userbot: your own account, for drafts and `twin sync`."""

    model_config = ConfigDict(extra="forbid")

    enabled: Literal["auto"] | bool = Field(
        "auto",
        description=(
            'Run the userbot inside `twin run`: "auto" (when `twin login` was done), true or false.'
        ),
    )
    default_mode: Literal["draft", "off"] = Field(
        "draft",
        description=(
            'When someone writes to you: "draft" (a reply waits for your Send/Edit/Discard in the\n'
            'bot) or "off". "auto" (sent after auto_delay seconds unless you answer first, and\n'
            "only if it passes a strict check) is set per chat, by hand: /mode in the bot."
        ),
    )
    auto_delay: float = Field(
        30.0, ge=0, description="Seconds an auto-mode draft waits for you to step in."
    )
    history_limit: int = Field(
        60, ge=1, description="How many earlier messages of the chat a draft is written against."
    )
    edit_minutes: float = Field(
        15,
        gt=0,
        description=(
            "An edit begun with ✏️ Edit ends after this many minutes: a text you send later "
            "is never taken as the corrected reply."
        ),
    )


class RetrainSettings(BaseModel):
    """Retraining by itself while `twin run` runs."""

    model_config = ConfigDict(extra="forbid")

    schedule: str = Field(
        "0 3 * * *",
        description=("Cron syntax; empty: never. A missed night is made up once at start-up."),
    )
    min_new_messages: int = Field(
        50,
        ge=0,
        description=(
            "Train only when you wrote at least this many messages since the active adapter's data."
        ),
    )
