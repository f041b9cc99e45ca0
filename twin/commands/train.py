"""`twin train`: fine-tune an adapter on the stored chats, and promote it if better."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from trainer.finetune import Progress
from trainer.run import RunConfig, RunReport, run_training
from twin.commands.common import (
    config_options,
    db_options,
    db_path,
    is_terminal,
    json_options,
    print_json,
)
from twin.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        parents=[config_options(), db_options(), json_options()],
        description="Build the dataset, fine-tune a LoRA adapter, evaluate it against the "
        "active one on the same validation samples, and make it active only if it is not "
        "worse. One run at a time.",
    )
    parser.add_argument("--resume", action="store_true", help="continue the last killed run")
    parser.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)  # bot, schedule
    parser.set_defaults(run=run)


def run_config(settings: Settings, database: Path) -> RunConfig:
    return RunConfig(
        data_dir=settings.data_dir,
        db_path=database,
        models_dir=settings.models_dir,
        model=settings.model,
        lora=settings.lora,
        train=settings.train,
        dataset=settings.dataset,
        prompt=settings.prompt,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    config = run_config(settings, db_path(args, settings))
    bar = ProgressBar() if is_terminal() else None
    try:
        report = run_training(
            config, trigger=args.trigger, resume=args.resume, on_progress=bar, on_stage=_stage(bar)
        )
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print_json(report.as_dict())
    else:
        print(format_report(report))
    return 0


def _stage(bar: ProgressBar | None) -> Callable[[str], None]:
    def show(name: str) -> None:
        if bar is not None:
            tqdm.write(f"twin: {name}")

    return show


class ProgressBar:
    """A progress bar of optimizer steps with the loss and tokens/s."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, progress: Progress) -> None:
        if self.bar is None:
            self.bar = tqdm(total=progress.total_steps, desc="train", unit="step")
            self.bar.update(progress.step - 1)
        self.bar.update(1)
        postfix = {"loss": f"{progress.loss:.3f}", "tok/s": f"{progress.tokens_per_s:.0f}"}
        if progress.val_loss is not None:
            postfix["val"] = f"{progress.val_loss:.3f}"
        self.bar.set_postfix(postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_report(report: RunReport) -> str:
    verdict = "promoted: now active" if report.promoted else "rejected"
    training = report.training
    return "\n".join(
        [
            f"Training run {report.run_id}: adapter {report.adapter_id} {verdict}",
            f"  why           {report.reason}",
            f"  samples       {report.samples['train']:,} train, "
            f"{report.samples['val']:,} validation",
            f"  steps         {training['steps']} of {training['total_steps']} "
            f"({training['stopped']}), {training['tokens_per_s']:.0f} tokens/s, "
            f"{training['seconds'] / 60:.1f} min",
            f"  loss          base {report.base_loss:.4f} -> adapter {report.adapter_loss:.4f} "
            f"({report.improvement:+.1%} better)",
            f"  adapter       {report.adapter_path}",
        ]
    )
