"""`twin eval`: how much better than the base model an adapter predicts your replies, and
whether it uses the conversation to pick them (selection)."""

from __future__ import annotations

import argparse
from pathlib import Path

from storage import with_database
from twin.commands.common import (
    Bars,
    config_options,
    db_options,
    db_path,
    is_terminal,
    json_options,
    print_json,
)
from twin.model import registry
from twin.model.checkpoints import prepare, read_config
from twin.reports import format_losses, format_style, next_step
from twin.settings import Settings
from twin.wiring import evaluate_with


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        parents=[config_options(), db_options(), json_options()],
    )
    parser.add_argument("--adapter", type=int, metavar="ID", help="default: the active adapter")
    parser.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="also generate N replies from each and compare their style with yours",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    adapter = with_database(db_path(args, settings), lambda db: registry.chosen(db, args.adapter))
    checkpoint = prepare(settings.model, settings.models_dir, progress=is_terminal())
    registry.require_base(adapter, read_config(checkpoint).name)
    bars = Bars(is_terminal())
    try:
        evaluation = evaluate_with(
            settings, checkpoint, Path(adapter.path), args.generate, meters=bars
        )
    finally:
        bars.close()
    if args.json:
        print_json({"adapter": adapter.id, **evaluation.as_dict()})
    else:
        print(format_losses(adapter.id, evaluation.losses, evaluation.selection.as_dict()))
        if evaluation.style:
            print(format_style(evaluation.style))
        print(next_step("twin chat", "talk to it yourself"))
    return 0
