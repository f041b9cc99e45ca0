"""The composition root: the engine, the reply service, a training run, the bot and the
userbot, each built from the settings in one place, so that every command that needs
one gets the same one.

The heavy rooms (torch, Lightning and litgpt behind the engine and the trainer;
aiogram; Telethon) are imported inside the function that builds from them: every
command imports this module, and `twin import` or `twin style` must not wait seconds
for a model library they never use (tests/twin/test_cli.py checks the import graph).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from storage import Database
from twin.api.settings import ServeSettings
from twin.engine.settings import GenerationSettings
from twin.memory.index import RefreshReport, refresh
from twin.model.checkpoints import embedded_gguf, prepare
from twin.model.settings import EMBEDDED
from twin.prompt.reply import ReplyPrompts
from twin.prompt.text import Prompt
from twin.settings import Settings, SettingsError, read_secret_file

if TYPE_CHECKING:
    from bot.config import BotConfig
    from exporter.userbot import UserbotConfig
    from trainer.evaluate import Evaluation, Meters
    from trainer.run import RunConfig
    from twin.engine.generate import Engine
    from twin.engine.service import ReplyService


def make_engine(settings: Settings) -> Engine:
    """The reply engine of `generate.backend`: twin's own on torch, or llama.cpp."""
    from twin.engine.generate import ReplyEngine
    from twin.model.device import choose_device, choose_precision

    # A first start converts the model (half a minute): a bar where someone watches.
    checkpoint = prepare(settings.model, settings.models_dir, progress=sys.stderr.isatty())
    if settings.generate.backend == "llama.cpp":
        from twin.engine.llama_cpp import LlamaCppEngine, weights_gguf

        if settings.model.checkpoint != EMBEDDED:
            raise SettingsError(
                'generate.backend = "llama.cpp" runs the embedded model (its GGUF ships '
                "with twin); for model.checkpoint = "
                + repr(settings.model.checkpoint)
                + ' use "twin"'
            )
        gguf = embedded_gguf(settings.models_dir / f"{checkpoint.name}.gguf")
        return LlamaCppEngine(
            checkpoint,
            weights_gguf(checkpoint, gguf, settings.generate.llama_weights),
            Prompt(settings.prompt),
            settings.generate.max_seq_length,
            threads=os.cpu_count(),
        )
    device = choose_device(settings.model.device)
    return ReplyEngine(
        checkpoint,
        Prompt(settings.prompt),
        choose_precision(device, settings.model.precision),
        device,
        settings.generate.max_seq_length,
    )


def serve_token(serve: ServeSettings) -> str | None:
    """The API's bearer token, from the environment/config or its 0600 file; None
    where there is none. An empty or blank one is none: `TWIN_SERVE__TOKEN=` would
    otherwise let in every client that sends an empty `Authorization: Bearer `."""
    token = None
    if serve.token is not None:
        token = serve.token.get_secret_value()
    elif serve.token_file is not None:
        token = read_secret_file(serve.token_file)
    return token.strip() or None if token is not None else None


def make_service(settings: Settings, database: Path, engine: Engine | None = None) -> ReplyService:
    from twin.engine.service import ReplyService

    prompts = ReplyPrompts(
        Prompt(settings.prompt),
        settings.dataset.session_gap,
        settings.dataset.context_tokens,
        settings.memory,
        database,
    )
    make = (lambda: engine) if engine is not None else (lambda: make_engine(settings))
    return ReplyService(make, prompts)


def run_config(settings: Settings, database: Path) -> RunConfig:
    from trainer.run import RunConfig

    return RunConfig(
        data_dir=settings.data_dir,
        db_path=database,
        models_dir=settings.models_dir,
        model=settings.model,
        lora=settings.lora,
        train=settings.train,
        preference=settings.preference,
        dataset=settings.dataset,
        prompt=settings.prompt,
        memory=settings.memory,
    )


def userbot_config(settings: Settings) -> UserbotConfig:
    from exporter.userbot import UserbotConfig

    telegram = settings.telegram
    return UserbotConfig(
        api_id=telegram.api_id or 0,
        api_hash=telegram.api_hash.get_secret_value() if telegram.api_hash else "",
        session=telegram.session.get_secret_value() if telegram.session else None,
        session_file=settings.session_file,
    )


def bot_config(
    settings: Settings, owner_id: int, database: Path, config_file: Path | None
) -> BotConfig:
    from bot.config import BotConfig

    token = settings.telegram.token()
    if not token:
        raise SettingsError(
            "telegram.bot_token is not set: create a bot with @BotFather, then set "
            "TWIN_TELEGRAM__BOT_TOKEN (or telegram.bot_token_file)"
        )
    train = [sys.executable, "-m", "twin", "train", "--json", "--db", str(database)]
    if config_file is not None:
        train += ["--config", str(config_file)]
    return BotConfig(
        token=token,
        api_url=settings.telegram.bot_api_url,
        owner_id=owner_id,
        train_command=train,
        bot=settings.bot,
        generation=settings.generate,
        retrain=settings.retrain,
        drafts=settings.userbot,
        dataset=settings.dataset,
        prompt=settings.prompt,
        memory=settings.memory,
    )


def evaluate_with(
    settings: Settings,
    checkpoint: Path,
    adapter_path: Path,
    generate: int = 0,
    generation: GenerationSettings | None = None,
    meters: Meters | None = None,
) -> Evaluation:
    """evaluate_adapter on the device, precision and batch sizes the settings name."""
    from trainer.evaluate import evaluate_adapter
    from twin.model.device import choose_device, choose_precision

    device = choose_device(settings.model.device)
    return evaluate_adapter(
        adapter_path,
        checkpoint,
        choose_precision(device, settings.model.precision),
        device,
        settings.train.max_seq_length,
        settings.train.micro_batch_tokens,
        generate=generate,
        generation=generation or settings.generate,
        quantize=settings.model.quantize,
        meters=meters,
    )


async def remember_history(db: Database, settings: Settings) -> RefreshReport | None:
    """Bring the memory up to the history after an import or a sync; None when off."""
    if not settings.memory.enabled:
        return None
    return await refresh(db, settings.dataset, settings.prompt.burst_separator)
