"""What the bot needs to run, and nothing else of twin's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.drafts import DraftSettings
from dataset.build import DatasetSettings
from dataset.prompt import PromptSettings
from trainer.settings import GenerationSettings


@dataclass(frozen=True)
class BotConfig:
    token: str
    api_url: str  # Telegram's, or a local Bot API server
    owner_id: int
    # Who may chat with the twin: "owner", "everyone", or a list of user ids.
    allow: str | list[int]
    # The command that runs one training run as a separate process (`twin train ...`).
    train_command: list[str]
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    # A cron expression for scheduled retraining (None: never), and how many new messages
    # of the owner it takes for a scheduled run to be worth it.
    schedule: str | None = "0 3 * * *"
    min_new_messages: int = 50
    history_limit: int = 60  # bot-chat messages read as the context of a reply
    drafts: DraftSettings = field(default_factory=DraftSettings)
    # How samples are built: /style describes the owner from the same samples.
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)

    def allows(self, user_id: int) -> bool:
        if user_id == self.owner_id or self.allow == "everyone":
            return True
        return isinstance(self.allow, list) and user_id in self.allow
