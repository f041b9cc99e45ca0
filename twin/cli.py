"""The `twin` command line: parse, load settings, run one subcommand, report errors.

Every failure the user can cause ends here as one line on stderr and a non-zero exit
code, never a traceback; each command leaves the database unchanged when it fails.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from collections.abc import Sequence

from storage.private import tighten_dir
from twin import __version__
from twin.settings import load_settings

# Each command, the module that implements it (its arguments and its run), and the line
# `twin --help` shows. Only the module of the command being run is imported: torch,
# Lightning and aiogram take seconds to load, and `twin --help` or `twin import` need
# none of them.
COMMANDS: dict[str, tuple[str, str]] = {
    "import": (
        "twin.commands.import_export",
        "import a Telegram Desktop export (result.json or its folder)",
    ),
    "login": ("twin.commands.userbot", "log the userbot in to your Telegram account (once)"),
    "sync": ("twin.commands.userbot", "fetch new messages of your private chats (userbot)"),
    "dataset": ("twin.commands.dataset", "turn the stored chats into training samples (JSONL)"),
    "model": ("twin.commands.model", "prepare or describe the base model (model.checkpoint)"),
    "train": (
        "twin.commands.train",
        "fine-tune a LoRA adapter on your chats (promoted only if it is better)",
    ),
    "eval": (
        "twin.commands.evaluate",
        "loss and perplexity of base model and adapter on held-out replies",
    ),
    "adapters": ("twin.commands.adapters", "list trained adapters; activate one or roll back"),
    "export": (
        "twin.commands.export",
        "write an adapter for other tools: PEFT (vLLM), GGUF (llama.cpp, Ollama)",
    ),
    "reply": ("twin.commands.talk", "one reply from the twin to TEXT"),
    "chat": ("twin.commands.talk", "talk to the twin in the terminal (/style knobs, /quit)"),
    "style": ("twin.commands.style", "your style in numbers, and the knobs of the replies"),
    "run": ("twin.commands.run", "run the Telegram bot (and retrain on schedule) until stopped"),
    "serve": (
        "twin.commands.serve",
        "serve the twin as an OpenAI-compatible API (/v1/chat/completions)",
    ),
    "demo": ("twin.commands.demo", "run the twin end to end on a shipped sample persona"),
}

# Errors that are the user's to fix, shown as one line with exit code 1. Looked up only
# in modules already loaded: an error can only come from a module the command imported.
USER_ERRORS = (
    ("twin.settings", "SettingsError"),
    ("storage.errors", "StorageError"),
    ("exporter.desktop_export", "ExportFormatError"),
    ("exporter.ingest", "OwnerError"),
    ("twin.model.checkpoints", "CheckpointError"),
    ("storage.runs", "RunLockedError"),
    ("trainer.errors", "TrainingError"),
    ("twin.model.registry", "RegistryError"),
    ("twin.engine.errors", "DegenerateReply"),
    ("twin.engine.errors", "BackendError"),
    ("exporter.userbot", "UserbotError"),
    ("exporter.sync", "SyncError"),
    ("twin.model.errors", "ExportError"),
    ("twin.model.qlora", "QuantizeError"),
)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser, with the full arguments of the command named in `argv`."""
    parser = argparse.ArgumentParser(
        prog="twin",
        description="A Telegram digital twin: learns to write like you from your chats.",
    )
    parser.add_argument("--version", action="version", version=f"twin {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = next((word for word in argv if not word.startswith("-")), None)
    if named in COMMANDS:
        importlib.import_module(COMMANDS[named][0]).register(commands)
    for name, (_, line) in COMMANDS.items():
        if name in commands.choices:
            command = commands.choices[name]
            command.description = command.description or line
        else:  # listed in `twin --help`, never parsed
            commands.add_parser(name, help=line, add_help=False)
    return parser


def is_user_error(err: BaseException) -> bool:
    return any(
        module in sys.modules and isinstance(err, getattr(sys.modules[module], name))
        for module, name in USER_ERRORS
    )


def size_progress_bars() -> None:
    """Give progress bars a size where the terminal reports none.

    A pseudo-terminal nobody sized (`script`, an IDE's console, a container started
    with -t) says 0 x 0; tqdm then computes -1 rows, takes its bar for one below the
    screen, and prints nothing at all. tqdm takes TQDM_NCOLS and TQDM_NROWS as every
    bar's defaults, in every room, reading them when it is imported: so this runs
    before any command module is (main's first step), with the usual fallback (80 x 24)."""
    try:
        columns, lines = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):  # not a terminal: tqdm prints no bar there anyway
        return
    if columns <= 0 or lines <= 0:
        fallback = shutil.get_terminal_size()
        os.environ.setdefault("TQDM_NCOLS", str(fallback.columns))
        os.environ.setdefault("TQDM_NROWS", str(fallback.lines))


def main(argv: Sequence[str] | None = None) -> int:
    size_progress_bars()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    # Everything twin writes (the database, datasets, adapters, the session) is private.
    os.umask(0o077)
    try:
        settings = load_settings(args.config)
        data = settings.data_dir
        # Tighten the data folder, not whatever folder it was pointed at ('.', ~); a dry
        # run changes nothing on disk.
        ours = data.is_dir() and ((data / "twin.db").exists() or not any(data.iterdir()))
        if ours and not getattr(args, "dry_run", False):
            tighten_dir(data)
        return int(args.run(args, settings) or 0)
    except KeyboardInterrupt:
        print("twin: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not is_user_error(err):
            raise
        print(f"twin: error: {err}", file=sys.stderr)
        return 1
