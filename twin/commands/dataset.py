"""`twin dataset`: build the training samples from the stored chats."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from storage import open_database
from twin.commands.common import config_options, db_options, db_path, json_options, print_json
from twin.dataset.build import DatasetStats, build_dataset
from twin.model.checkpoints import is_complete, locate
from twin.prompt.samples import SampleMaker
from twin.reports import format_stats, next_step
from twin.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dataset",
        parents=[config_options(), db_options(), json_options()],
        description="Build instruction samples from your personal chats: conversations "
        "split after a day of silence, bursts merged, personal data scrubbed, the newest "
        "conversations held out for validation.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="where to write (default: data/dataset/samples.jsonl)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    out = args.out or settings.dataset_path
    stats = make_dataset(settings, db_path(args, settings), out)
    if args.json:
        print_json(stats.as_dict())
    else:
        print(format_stats(stats))
        print(next_step("twin train", "fine-tune your twin on these samples"))
    return 0


def make_dataset(settings: Settings, database: Path, out: Path) -> DatasetStats:
    """Build with the model's tokenizer measuring the context when the model is ready."""
    asyncio.run(_migrate(database))
    _, checkpoint, _ = locate(settings.model.checkpoint, settings.models_dir)
    tokenizer = checkpoint if is_complete(checkpoint) else None
    return build_dataset(database, out, settings.dataset, SampleMaker(settings.prompt), tokenizer)


async def _migrate(database: Path) -> None:
    async with open_database(database, create=False):
        pass  # an older database is migrated before worker processes read it
