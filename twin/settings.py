"""Settings: config.toml, overridden by TWIN_* environment variables, validated.

Precedence, highest first: command-line flags (applied by the CLI), environment
(`TWIN_DATA_DIR`, nested keys with a double underscore: `TWIN_TELEGRAM__OWNER_ID`),
the config file, then the defaults below. Secrets belong in the environment (or a 0600
file named by `*_file` settings), never in config.toml.

The lower packages never see this object: the CLI hands each one the plain section it
needs, so storage, exporter and trainer stay usable without twin's configuration.
"""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.settings import BotSettings, RetrainSettings, UserbotSettings
from trainer.settings import PreferenceSettings, TrainSettings
from twin.api.settings import ServeSettings
from twin.dataset.settings import DatasetSettings
from twin.engine.settings import GenerationSettings
from twin.memory.settings import MemorySettings
from twin.model.settings import LoRASettings, ModelSettings
from twin.prompt.settings import PromptSettings

DEFAULT_CONFIG = Path("config.toml")


class SettingsError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(Section):
    """Where the database lives."""

    path: Path | None = Field(
        None,
        description=(
            "The SQLite database file. Empty: <data_dir>/twin.db. `--db PATH` overrides it."
        ),
        examples=["data/twin.db"],
    )


class TelegramSettings(Section):
    """Your accounts: who you are, the bot's token, the userbot's API keys. Secrets come
    from the environment or a 0600 file, never from this file."""

    owner_id: int | None = Field(
        None,
        description=(
            'Your Telegram user id: who "you" are in imported chats. A full-account export names\n'
            "its owner, and a personal-chat export reveals it, so this is rarely needed; `twin\n"
            "import` tells you when it is (and lists the senders to choose from)."
        ),
        examples=[123456789],
    )
    bot_token: SecretStr | None = Field(
        None,
        description=(
            "The bot's token from @BotFather. A secret: set TWIN_TELEGRAM__BOT_TOKEN, or put it\n"
            "in a file only you can read (chmod 600) and name that file in bot_token_file."
        ),
        json_schema_extra={"secret": True},
    )
    bot_token_file: Path | None = Field(None, examples=["/home/me/.config/twin/bot_token"])
    bot_api_url: str = Field(
        "https://api.telegram.org", description="Telegram's Bot API, or a local Bot API server."
    )
    api_id: int | None = Field(
        None,
        description=(
            "The userbot (your own account, for drafts and `twin sync`): api_id and api_hash\n"
            "from https://my.telegram.org. The hash is a secret: TWIN_TELEGRAM__API_HASH."
        ),
        examples=[1234567],
    )
    api_hash: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    session: SecretStr | None = Field(
        None,
        description=(
            "`twin login` saves the session in <data_dir>/userbot.session (chmod 600). Instead,\n"
            "a Telethon string session may come from TWIN_TELEGRAM__SESSION (a secret too)."
        ),
        json_schema_extra={"secret": True},
    )

    def token(self) -> str | None:
        """The bot token, from the environment/config or the 0600 file."""
        if self.bot_token is not None:
            return self.bot_token.get_secret_value()
        if self.bot_token_file is not None:
            return read_secret_file(self.bot_token_file)
        return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TWIN_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(
        Path("data"),
        description=(
            "Where twin keeps everything it makes: the database, models, datasets, adapters."
        ),
    )
    storage: StorageSettings = StorageSettings()
    telegram: TelegramSettings = TelegramSettings()
    bot: BotSettings = BotSettings()
    userbot: UserbotSettings = UserbotSettings()
    retrain: RetrainSettings = RetrainSettings()
    dataset: DatasetSettings = DatasetSettings()
    prompt: PromptSettings = PromptSettings()
    memory: MemorySettings = MemorySettings()
    model: ModelSettings = ModelSettings()
    lora: LoRASettings = LoRASettings()
    train: TrainSettings = TrainSettings()
    preference: PreferenceSettings = PreferenceSettings()
    generate: GenerationSettings = GenerationSettings()
    serve: ServeSettings = ServeSettings()

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
    check_environment(os.environ)
    try:
        return Settings(**data)
    except ValidationError as err:
        raise SettingsError(describe(err, path, os.environ)) from None


def read_secret_file(path: Path) -> str:
    """A secret from a file that only its owner may read (chmod 600)."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise SettingsError(f"{path}: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"{path}: others can read this secret; run: chmod 600 {path}")
    return path.read_text(encoding="utf-8").strip()


ENV_PREFIX = "TWIN_"
NOT_SETTINGS = frozenset({"TWIN_CONFIG"})  # read by find_config, not a setting
SECRET_PARTS = ("token", "hash", "session")  # keys whose values are never echoed


def environment_names() -> dict[str, tuple[str, ...]]:
    """Every environment variable that sets something (upper case), and its key:
    `TWIN_TRAIN__MAX_STEPS` -> ("train", "max_steps"); a whole section may come as JSON
    (`TWIN_TRAIN`)."""
    names: dict[str, tuple[str, ...]] = {}
    for name, field in Settings.model_fields.items():
        names[f"{ENV_PREFIX}{name}".upper()] = (name,)
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for key in section.model_fields:
                names[f"{ENV_PREFIX}{name}__{key}".upper()] = (name, key)
    return names


def check_environment(environ: Mapping[str, str]) -> None:
    """A TWIN_* variable that sets nothing is a mistake, not something to ignore: the
    user meant a setting (`TWIN_TRAIN__MAX_STEP`), and would wonder why it has no effect."""
    known = environment_names()
    for variable in sorted(environ):
        name = variable.upper()
        if name.startswith(ENV_PREFIX) and name not in known and name not in NOT_SETTINGS:
            raise SettingsError(f"{variable}: no such setting{_did_you_mean(name, known)}")


def describe(err: ValidationError, path: Path | None, environ: Mapping[str, str]) -> str:
    """Pydantic's multi-line report as one line, each problem named where it was made:
    `TWIN_TRAIN__MAX_STEPS: ...` for the environment, `config.toml: train.max_steps:
    ...` for the file; an unknown key with the nearest real one."""
    given = {name.upper() for name in environ}
    parts = []
    for error in err.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "settings"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown setting{_did_you_mean(loc[-1], _siblings(loc))}"
        got = error.get("input")
        hidden = error["type"] == "extra_forbidden" or isinstance(got, dict)
        secret = any(part in key for part in SECRET_PARTS)  # never echo those
        shown = "" if hidden or secret else f" (got {got!r})"
        variable = f"{ENV_PREFIX}{'__'.join(loc[:2])}".upper()
        if variable in given:
            parts.append(f"{variable}: {message}{shown}")
        else:
            parts.append(f"{path or 'settings'}: {key}: {message}{shown}")
    return "; ".join(parts)


def _siblings(loc: tuple[str, ...]) -> list[str]:
    """The keys beside the last one of `loc`: a section's fields, or the sections."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        model = inner
    return list(model.model_fields)


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
