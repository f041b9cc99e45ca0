"""Options and helpers that several subcommands share."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from twin.settings import Settings

if TYPE_CHECKING:
    from trainer.finetune import Progress


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


class ProgressBar:
    """A progress bar of optimizer steps with the loss and tokens/s."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, progress: Progress) -> None:
        if self.bar is None:
            self.bar = tqdm(total=progress.total_steps, desc="train", unit="step")
            self.bar.update(progress.step - 1)
        if self.bar.total != progress.total_steps:  # the run fitted its length to its budget
            self.bar.total = progress.total_steps
            self.bar.refresh()
        self.bar.update(1)
        postfix = {"loss": f"{progress.loss:.3f}", "tok/s": f"{progress.tokens_per_s:.0f}"}
        if progress.val_loss is not None:
            postfix["val"] = f"{progress.val_loss:.3f}"
        self.bar.set_postfix(postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressLines:
    """Training progress where no terminal shows a bar (systemd, CI, a pipe): one line
    at the first step, at every validation and at the last, with the time left."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream  # None: stderr as it is when a line is printed

    def __call__(self, progress: Progress) -> None:
        shown = progress.step in (1, progress.total_steps) or progress.val_loss is not None
        if not shown:
            return
        left = progress.elapsed / max(progress.step, 1) * (progress.total_steps - progress.step)
        validation = "" if progress.val_loss is None else f", validation {progress.val_loss:.3f}"
        print(
            f"twin: step {progress.step}/{progress.total_steps}, loss {progress.loss:.3f}"
            f"{validation}, {progress.tokens_per_s:.0f} tokens/s, about {left / 60:.1f} min left",
            file=self.stream or sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        pass
