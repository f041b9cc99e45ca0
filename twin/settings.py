"""Settings: config.toml, overridden by TWIN_* environment variables, validated.

Precedence, highest first: command-line flags (applied by the CLI), environment
(`TWIN_DATA_DIR`, nested keys with a double underscore: `TWIN_TELEGRAM__OWNER_ID`),
the config file, then the defaults below. Secrets belong in the environment (or a 0600
file named by `*_file` settings), never in config.toml.

The lower packages never see this object: the CLI hands each one the plain section it
needs, so storage, exporter and trainer stay usable without twin's configuration.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dataset.build import DatasetSettings
from dataset.prompt import PromptSettings
from trainer.settings import GenerationSettings, LoRASettings, ModelSettings, TrainSettings

DEFAULT_CONFIG = Path("config.toml")


class SettingsError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(Section):
    # The SQLite file; empty means <data_dir>/twin.db.
    path: Path | None = None


class TelegramSettings(Section):
    # Your Telegram user id: who "you" are in imported chats. Usually found by itself
    # (a full export names its owner); needed for single-chat exports of group chats.
    owner_id: int | None = None
    # The bot's token from @BotFather. A secret: set TWIN_TELEGRAM__BOT_TOKEN, or put it
    # in a file only you can read (chmod 600) and name the file in bot_token_file.
    bot_token: SecretStr | None = None
    bot_token_file: Path | None = None
    # Telegram's Bot API, or a local Bot API server.
    bot_api_url: str = "https://api.telegram.org"
    # For the userbot (your own account): from https://my.telegram.org. The hash is a
    # secret: TWIN_TELEGRAM__API_HASH.
    api_id: int | None = None
    api_hash: SecretStr | None = None
    # The userbot's login: a Telethon string session (a secret: TWIN_TELEGRAM__SESSION);
    # empty means the session file twin login writes (0600) in the data directory.
    session: SecretStr | None = None

    def token(self) -> str | None:
        """The bot token, from the environment/config or the 0600 file."""
        if self.bot_token is not None:
            return self.bot_token.get_secret_value()
        if self.bot_token_file is not None:
            return read_secret_file(self.bot_token_file)
        return None


class UserbotSettings(Section):
    # Run the userbot (your own account) inside `twin run`: "auto" when logged in.
    enabled: Literal["auto"] | bool = "auto"
    # What happens when someone writes to you: draft (ask you first), auto (send after
    # auto_delay seconds unless you answer), off. Set per chat with /mode in the bot.
    default_mode: Literal["draft", "auto", "off"] = "draft"
    auto_delay: float = 30.0
    # How many earlier messages of the chat a draft is written against.
    history_limit: int = 60


class BotSettings(Section):
    # Who may chat with the twin through the bot: "owner", "everyone", or a list of ids.
    allow: Literal["owner", "everyone"] | list[int] = "owner"
    # How many earlier messages of a bot chat the twin reads before replying.
    history_limit: int = 60


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TWIN_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Path("data")
    storage: StorageSettings = StorageSettings()
    telegram: TelegramSettings = TelegramSettings()
    bot: BotSettings = BotSettings()
    userbot: UserbotSettings = UserbotSettings()
    dataset: DatasetSettings = DatasetSettings()
    prompt: PromptSettings = PromptSettings()
    model: ModelSettings = ModelSettings()
    lora: LoRASettings = LoRASettings()
    train: TrainSettings = TrainSettings()
    generate: GenerationSettings = GenerationSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return (env_settings, init_settings)

    @property
    def db_path(self) -> Path:
        return self.storage.path or self.data_dir / "twin.db"

    @property
    def session_file(self) -> Path:
        return self.data_dir / "userbot.session"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def dataset_path(self) -> Path:
        return self.data_dir / "dataset" / "samples.jsonl"


def find_config(explicit: Path | None) -> Path | None:
    """--config, else $TWIN_CONFIG, else ./config.toml if present, else none (defaults)."""
    if explicit is not None:
        if not explicit.is_file():
            raise SettingsError(f"{explicit}: config file not found")
        return explicit
    from_env = os.environ.get("TWIN_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise SettingsError(f"{path}: config file not found (from TWIN_CONFIG)")
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_settings(config: Path | None = None) -> Settings:
    path = find_config(config)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as file:
                data = tomllib.load(file)
        except tomllib.TOMLDecodeError as err:
            raise SettingsError(f"{path}: not valid TOML: {err}") from None
        except OSError as err:
            raise SettingsError(f"{path}: {err.strerror}") from None
    try:
        return Settings(**data)
    except ValidationError as err:
        raise SettingsError(f"{path or 'settings'}: {describe(err)}") from None


def read_secret_file(path: Path) -> str:
    """A secret from a file that only its owner may read (chmod 600)."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise SettingsError(f"{path}: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"{path}: others can read this secret; run: chmod 600 {path}")
    return path.read_text(encoding="utf-8").strip()


def describe(err: ValidationError) -> str:
    """Pydantic's multi-line report as one line: `key.path: problem (got X)`."""
    parts = []
    for error in err.errors():
        key = ".".join(str(p) for p in error["loc"]) or "settings"
        message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        got = error.get("input")
        hidden = error["type"] == "extra_forbidden" or isinstance(got, dict)
        secret = any(part in key for part in ("token", "hash", "session"))  # never echo those
        shown = "" if hidden or secret else f" (got {got!r})"
        parts.append(f"{key}: {message}{shown}")
    return "; ".join(parts)
