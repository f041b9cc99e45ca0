"""`twin train`: fine-tune an adapter on the stored chats, and promote it if better."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from tqdm import tqdm

from twin.commands.common import (
    Bars,
    ProgressBar,
    ProgressLines,
    config_options,
    db_options,
    db_path,
    is_terminal,
    json_options,
    print_json,
)
from twin.reports import format_run, next_step
from twin.settings import Settings
from twin.wiring import run_config


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        parents=[config_options(), db_options(), json_options()],
        description="Build the dataset, fine-tune a LoRA adapter, evaluate it against the "
        "active one on the same validation samples, and make it active only if it is not "
        "worse. One run at a time.",
    )
    parser.add_argument("--resume", action="store_true", help="continue the last killed run")
    parser.add_argument(
        "--node-rank",
        type=int,
        metavar="N",
        help="on machine N of a multi-node run (train.num_nodes): train beside the main node, "
        "whose twin train has started (the data folder shared)",
    )
    parser.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)  # bot, schedule
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.run import join_training, run_training

    config = run_config(settings, db_path(args, settings))
    terminal = is_terminal()
    if args.node_rank is not None:
        join_training(config, args.node_rank, on_stage=_stage(terminal))
        return 0
    bar = ProgressBar() if terminal else ProgressLines()
    bars = Bars(terminal)
    try:
        report = run_training(
            config,
            trigger=args.trigger,
            resume=args.resume,
            on_progress=bar,
            on_stage=_stage(terminal),
            meters=bars,
        )
    finally:
        bar.close()
        bars.close()
    if args.json:
        print_json(report.as_dict())
    else:
        print(format_run(report))
        if report.promoted:
            print(next_step("twin chat", "talk to your twin; twin eval --generate 8 to measure it"))
        else:
            print(
                next_step(
                    "twin adapters",
                    f"the active one stays; twin eval --adapter {report.adapter_id} to compare",
                )
            )
    return 0


def _stage(terminal: bool) -> Callable[[str], None]:
    def show(name: str) -> None:
        if terminal:
            tqdm.write(f"twin: {name}")
        else:
            print(f"twin: {name}", file=sys.stderr, flush=True)

    return show
