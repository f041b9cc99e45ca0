"""`twin adapters [activate ID | rollback]`: the registry of trained adapters."""

from __future__ import annotations

import argparse
import time

from storage import adapters as adapters_table
from storage import with_database
from storage.adapters import Adapter
from twin.commands.common import config_options, db_options, db_path, json_options, print_json
from twin.model import registry
from twin.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    common = [config_options(), db_options(), json_options()]
    parser = commands.add_parser("adapters", parents=common)
    parser.set_defaults(run=run_list)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    activate = actions.add_parser("activate", parents=common, help="make adapter ID active")
    activate.add_argument("id", type=int, metavar="ID")
    activate.set_defaults(run=run_activate)
    rollback = actions.add_parser(
        "rollback", parents=common, help="back to the adapter active before this one"
    )
    rollback.set_defaults(run=run_rollback)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    adapters = with_database(db_path(args, settings), adapters_table.all_adapters)
    if args.json:
        print_json([_as_dict(a) for a in adapters])
        return 0
    if not adapters:
        print("No adapters yet: run twin train")
        return 0
    print(f"{'id':>4}  {'status':<9}  {'val loss':>8}  {'created':<16}  base model / why")
    for adapter in adapters:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(adapter.created))
        loss = f"{adapter.val_loss:.4f}" if adapter.val_loss is not None else "-"
        print(
            f"{adapter.id:>4}  {adapter.status:<9}  {loss:>8}  {created:<16}  {adapter.base_model}"
        )
        if adapter.reason:
            print(f"{'':>40}{adapter.reason}")
    return 0


def run_activate(args: argparse.Namespace, settings: Settings) -> int:
    adapter = with_database(db_path(args, settings), lambda db: registry.activate(db, args.id))
    return _done(args, adapter, "activated")


def run_rollback(args: argparse.Namespace, settings: Settings) -> int:
    adapter = with_database(db_path(args, settings), registry.rollback)
    return _done(args, adapter, "rolled back to")


def _done(args: argparse.Namespace, adapter: Adapter, verb: str) -> int:
    if args.json:
        print_json({"active": adapter.id})
    else:
        print(f"{verb} adapter {adapter.id}")
    return 0


def _as_dict(adapter: Adapter) -> dict[str, object]:
    return {
        "id": adapter.id,
        "status": adapter.status,
        "val_loss": adapter.val_loss,
        "base_model": adapter.base_model,
        "created": adapter.created,
        "reason": adapter.reason,
        "path": adapter.path,
        "run_id": adapter.run_id,
    }
