"""`twin eval`: how much better than the base model an adapter predicts your replies, and
whether it uses the conversation to pick them (selection)."""

from __future__ import annotations

import argparse
from pathlib import Path

from model.checkpoints import prepare, read_config
from model.registry import RegistryError, read_meta
from storage import Database, with_database
from storage import adapters as adapters_table
from twin.commands.common import config_options, db_options, db_path, json_options, print_json
from twin.reports import format_losses, format_style
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
    adapter_id, adapter_path = with_database(
        db_path(args, settings), lambda db: _choose(db, args.adapter)
    )
    checkpoint = prepare(settings.model, settings.models_dir)
    meta = read_meta(adapter_path)
    if read_config(checkpoint).name != meta["base_model"]:
        raise RegistryError(
            f"adapter {adapter_id} was trained on {meta['base_model']}, but model.checkpoint "
            f"is {read_config(checkpoint).name}"
        )
    evaluation = evaluate_with(settings, checkpoint, adapter_path, args.generate)
    if args.json:
        print_json({"adapter": adapter_id, **evaluation.as_dict()})
    else:
        print(format_losses(adapter_id, evaluation.losses, evaluation.selection.as_dict()))
        if evaluation.style:
            print(format_style(evaluation.style))
    return 0


async def _choose(db: Database, adapter_id: int | None) -> tuple[int, Path]:
    adapter = (
        await adapters_table.get(db, adapter_id)
        if adapter_id is not None
        else await adapters_table.active(db)
    )
    if adapter is None:
        raise RegistryError(
            f"no adapter {adapter_id}"
            if adapter_id is not None
            else "no active adapter yet: run twin train"
        )
    return adapter.id, Path(adapter.path)
