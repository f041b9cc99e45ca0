"""`twin demo`: the whole product on the shipped sample persona, offline."""

from __future__ import annotations

import argparse
import asyncio
from importlib import resources
from pathlib import Path

from exporter.desktop_import import import_desktop_export
from storage import open_database
from twin.commands.common import config_options, is_terminal
from twin.commands.import_export import format_report
from twin.settings import Settings


def sample_export() -> Path:
    return Path(str(resources.files("twin") / "sample" / "result.json"))


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        parents=[config_options()],
        help="run the twin end to end on a shipped sample persona",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    demo_dir = settings.data_dir / "demo"
    asyncio.run(_run(demo_dir))
    return 0


async def _run(demo_dir: Path) -> None:
    async with open_database(demo_dir / "twin.db") as db:
        report = await import_desktop_export(db, sample_export(), progress=is_terminal())
    print(format_report(report))
