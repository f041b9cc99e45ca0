"""The `twin` command line: parse, load settings, run one subcommand, report errors.

Every failure the user can cause ends here as one line on stderr and a non-zero exit
code, never a traceback; each command leaves the database unchanged when it fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from exporter.desktop_export import ExportFormatError
from exporter.desktop_import import OwnerError
from exporter.sync import SyncError
from exporter.userbot import UserbotError
from storage import StorageError
from storage.runs import RunLockedError
from trainer.checkpoints import CheckpointError
from trainer.generate import DegenerateReply
from trainer.registry import RegistryError
from trainer.run import TrainingError
from twin import __version__
from twin.commands import (
    adapters,
    dataset,
    demo,
    evaluate,
    import_export,
    model,
    run,
    talk,
    train,
    userbot,
)
from twin.settings import SettingsError, load_settings

# Errors that are the user's to fix: shown as one line, exit code 1.
USER_ERRORS: tuple[type[Exception], ...] = (
    SettingsError,
    StorageError,
    ExportFormatError,
    OwnerError,
    CheckpointError,
    RunLockedError,
    TrainingError,
    RegistryError,
    DegenerateReply,
    UserbotError,
    SyncError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twin",
        description="A Telegram digital twin: learns to write like you from your chats.",
    )
    parser.add_argument("--version", action="version", version=f"twin {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        import_export,
        userbot,
        dataset,
        model,
        train,
        evaluate,
        adapters,
        talk,
        run,
        demo,
    ):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        return int(args.run(args, settings) or 0)
    except USER_ERRORS as err:
        print(f"twin: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("twin: interrupted", file=sys.stderr)
        return 130
