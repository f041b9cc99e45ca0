"""`twin model prepare|info`: the base model the twin is trained from."""

from __future__ import annotations

import argparse

from twin.commands.common import config_options, is_terminal, json_options, print_json
from twin.model.checkpoints import info, prepare
from twin.reports import format_info
from twin.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "model",
        description="The base model: 'embedded' (Gemma 3 270M, offline), a litgpt "
        "checkpoint folder, or a Hugging Face model id fetched where a network exists.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    prepare_parser = actions.add_parser(
        "prepare",
        parents=[config_options(), json_options()],
        help="convert or download the model once; later calls return at once",
    )
    prepare_parser.set_defaults(run=run_prepare)
    info_parser = actions.add_parser(
        "info", parents=[config_options(), json_options()], help="name, size, precision, path"
    )
    info_parser.set_defaults(run=run_info)


def run_prepare(args: argparse.Namespace, settings: Settings) -> int:
    prepare(settings.model, settings.models_dir, progress=is_terminal())
    return run_info(args, settings)


def run_info(args: argparse.Namespace, settings: Settings) -> int:
    described = info(settings.model, settings.models_dir)
    if args.json:
        print_json(described.as_dict())
    else:
        print(format_info(described))
    return 0
