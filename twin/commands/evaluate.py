"""`twin eval`: how much better than the base model an adapter predicts your replies."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.checkpoints import prepare, read_config
from model.device import choose_device, choose_precision
from model.registry import RegistryError, read_meta
from storage import Database, with_database
from storage import adapters as adapters_table
from trainer.evaluate import evaluate_adapter
from trainer.loss import LossReport
from twin.commands.common import config_options, db_options, db_path, json_options, print_json
from twin.settings import Settings

if TYPE_CHECKING:
    from engine.settings import GenerationSettings


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
    report, style = evaluate_with(settings, checkpoint, adapter_path, args.generate)
    if args.json:
        print_json(
            {"adapter": adapter_id, **report.as_dict(), **({"style": style} if style else {})}
        )
    else:
        print(format_report(adapter_id, report))
        if style:
            print(format_style(style))
    return 0


def evaluate_with(
    settings: Settings,
    checkpoint: Path,
    adapter_path: Path,
    generate: int = 0,
    generation: GenerationSettings | None = None,
) -> tuple[LossReport, dict[str, Any] | None]:
    """evaluate_adapter on the device, precision and batch sizes the settings name."""
    device = choose_device(settings.model.device)
    return evaluate_adapter(
        adapter_path,
        checkpoint,
        choose_precision(device, settings.model.precision),
        device,
        settings.train.max_seq_length,
        settings.train.micro_batch_tokens,
        generate=generate,
        generation=generation or settings.generate,
    )


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


def format_report(adapter_id: int, report: LossReport) -> str:
    return "\n".join(
        [
            f"Adapter {adapter_id} on {report.samples:,} held-out replies "
            f"({report.tokens:,} tokens)",
            f"  loss per token  base {report.base_loss:.4f}   adapter {report.adapter_loss:.4f}",
            f"  perplexity      base {report.base_perplexity:.2f}   "
            f"adapter {report.adapter_perplexity:.2f}",
            f"  improvement     {report.improvement:+.1%}",
        ]
    )


def format_style(style: dict) -> str:
    sides = [s for s in ("real", "base", "adapter") if s in style]
    rows = [
        ("median length", "median_chars", "{:.0f}"),
        ("length distance", "length_distance", "{:.2f}"),
        ("messages/reply", "messages_per_reply", "{:.2f}"),
        ("emoji rate", "emoji_rate", "{:.0%}"),
        ("filler words", "filler_word_rate", "{:.0%}"),
        ("authorship", "authorship", "{:.2f}"),
    ]
    lines = [
        f"Style of {style['samples']} generated replies (your filler words: "
        f"{', '.join(style['owner_filler_words']) or '-'})",
        "  " + " " * 16 + "".join(f"{side:>10}" for side in sides),
    ]
    for label, key, fmt in rows:
        lines.append(f"  {label:<16}" + "".join(f"{fmt.format(style[s][key]):>10}" for s in sides))
    return "\n".join(lines)
