"""What the bot needs to run, and nothing else of twin's configuration.

The sections are the configuration's own (bot.settings, engine.settings,
dataset.settings, prompt.settings, memory.settings): their defaults are defined there, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.settings import BotSettings, RetrainSettings, UserbotSettings
from twin.dataset.settings import DatasetSettings
from twin.engine.settings import GenerationSettings
from twin.memory.settings import MemorySettings
from twin.prompt.settings import PromptSettings


@dataclass(frozen=True)
class BotConfig:
    token: str = field(repr=False)  # a secret: never in a repr, a log or a traceback
    api_url: str  # Telegram's, or a local Bot API server
    owner_id: int
    # The command that runs one training run as a separate process (`twin train ...`).
    train_command: list[str]
    bot: BotSettings = field(default_factory=BotSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    retrain: RetrainSettings = field(default_factory=RetrainSettings)
    drafts: UserbotSettings = field(default_factory=UserbotSettings)
    # How samples are built: /style describes the owner from the same samples.
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)

    def allows(self, user_id: int) -> bool:
        allow = self.bot.allow
        if user_id == self.owner_id or allow == "everyone":
            return True
        return isinstance(allow, list) and user_id in allow
