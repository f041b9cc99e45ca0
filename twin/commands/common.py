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
    from trainer.loss import Meter


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
        if progress.step == progress.total_steps:  # the last: the evaluation's bar is next
            self.bar.close()

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


class Bars:
    """The meters of a long evaluation (trainer.loss.Meter), one per stretch ("evaluate",
    "generate"): a tqdm bar on a terminal; elsewhere (a pipe, systemd, the bot's
    subprocess) a line at each quarter of the way. `close` ends them all."""

    def __init__(self, terminal: bool, stream: TextIO | None = None) -> None:
        self.terminal, self.stream = terminal, stream
        self.meters: list[_BarMeter | _LineMeter] = []

    def __call__(self, what: str, unit: str) -> Meter:
        meter = _BarMeter(what, unit) if self.terminal else _LineMeter(what, unit, self.stream)
        self.meters.append(meter)
        return meter

    def close(self) -> None:
        for meter in self.meters:
            meter.close()


class _BarMeter:
    def __init__(self, what: str, unit: str) -> None:
        self.what, self.unit = what, unit
        self.bar: tqdm | None = None

    def expect(self, amount: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=amount, desc=self.what, unit=self.unit, unit_scale=True)
        else:  # another part of the same stretch
            self.bar.total += amount
            self.bar.refresh()

    def __call__(self, amount: int) -> None:
        if self.bar is not None:
            self.bar.update(amount)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _LineMeter:
    def __init__(self, what: str, unit: str, stream: TextIO | None) -> None:
        self.what, self.unit, self.stream = what, unit, stream
        self.total = self.done = self.shown = 0

    def expect(self, amount: int) -> None:
        self.total += amount

    def __call__(self, amount: int) -> None:
        self.done += amount
        quarter = 4 * self.done // max(self.total, 1)
        if quarter > self.shown:
            self.shown = quarter
            units = self.unit[:-1] + "ies" if self.unit.endswith("y") else self.unit + "s"
            print(
                f"twin: {self.what}: {self.done:,} of {self.total:,} {units}",
                file=self.stream or sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        pass
