"""`twin style`: the owner's style profile and the reply knobs, as `/style` shows them."""

from __future__ import annotations

import argparse

from storage import settings as settings_table
from storage import with_database
from twin.commands.common import config_options, db_options, db_path, json_options, print_json
from twin.dataset.style import describe, owner_style
from twin.engine.settings import describe_knobs, knob_values, parse_knob
from twin.engine.style import owner_generation
from twin.prompt.samples import SampleMaker
from twin.settings import Settings, SettingsError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "style",
        parents=[config_options(), db_options(), json_options()],
        description="Without arguments: how you write (from your stored replies) and the "
        "current knobs. `twin style NAME VALUE` sets a knob (temperature, top_k, top_p, "
        "repetition_penalty, max_new_tokens, length) for the bot and the terminal alike; "
        "`twin style reset` goes back to config.toml.",
    )
    parser.add_argument("words", nargs="*", metavar="NAME VALUE | reset")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    database = db_path(args, settings)
    if args.words == ["reset"]:
        with_database(database, lambda db: settings_table.delete(db, settings_table.STYLE))
        print("Knobs reset to the configured defaults.")
        return 0
    if args.words:
        if len(args.words) != 2:
            raise SettingsError("usage: twin style [NAME VALUE | reset]")
        try:
            name, value = parse_knob(*args.words)
        except ValueError as err:
            raise SettingsError(f"cannot set that: {err}") from None
        with_database(database, lambda db: settings_table.set_knob(db, name, value))
        print(f"{name} is now {value}; the next reply uses it.")
        return 0

    current = with_database(database, lambda db: owner_generation(db, settings.generate))
    profile = owner_style(database, settings.dataset, SampleMaker(settings.prompt))
    if args.json:
        described = profile.as_dict() if profile else None
        print_json({"profile": described, "knobs": knob_values(current)})
        return 0
    print("\n".join(describe(profile)) if profile else "No reply of yours is stored yet.")
    print(f"Knobs: {describe_knobs(current)}")
    return 0
