"""`twin import PATH`: a Telegram Desktop export into the database."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from exporter.desktop_import import ImportReport, import_desktop_export
from storage import open_database
from twin.commands.common import (
    config_options,
    db_options,
    db_path,
    is_terminal,
    json_options,
    print_json,
)
from twin.memory.index import RefreshReport
from twin.reports import format_import, format_memory, next_step
from twin.settings import Settings
from twin.wiring import remember_history


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import",
        parents=[config_options(), db_options(), json_options()],
        description="Import a Telegram Desktop JSON export. Importing the same export "
        "again adds nothing; a newer export adds only what is new. A broken file "
        "imports nothing.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="result.json or its folder")
    parser.add_argument("--me", type=int, metavar="ID", help="your Telegram user id")
    parser.add_argument(
        "--dry-run", action="store_true", help="read and count everything, write nothing"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    owner = args.me if args.me is not None else settings.telegram.owner_id
    report, memory = asyncio.run(
        _import(db_path(args, settings), args.path, owner, args.dry_run, settings)
    )
    if args.json:
        print_json({**report.as_dict(), "memory": memory.as_dict() if memory else None})
    else:
        print(format_import(report))
        if args.dry_run:
            print(next_step(f"twin import {args.path}", "without --dry-run, to store it"))
        else:
            print(format_memory(memory))
            print(next_step("twin train", "fine-tune your twin on these chats"))
    return 0


async def _import(
    db_file: Path, path: Path, owner: int | None, dry_run: bool, settings: Settings
) -> tuple[ImportReport, RefreshReport | None]:
    async with open_database(db_file, discard_if_new=dry_run) as db:
        report = await import_desktop_export(
            db, path, owner_id=owner, dry_run=dry_run, progress=is_terminal()
        )
        if dry_run:
            return report, None
        return report, await remember_history(db, settings)
