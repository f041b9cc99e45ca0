"""Options and helpers that several subcommands share."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from twin.settings import Settings


def config_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config", type=Path, metavar="PATH", help="config file (default: ./config.toml)"
    )
    return parent


def db_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db", type=Path, metavar="PATH", help="database file (overrides storage.path)"
    )
    return parent


def json_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON object")
    return parent


def db_path(args: argparse.Namespace, settings: Settings) -> Path:
    return args.db if getattr(args, "db", None) else settings.db_path


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, sort_keys=False)
    sys.stdout.write("\n")


def is_terminal() -> bool:
    return sys.stderr.isatty()
