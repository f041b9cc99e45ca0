"""Training from the bot: `twin train` in its own process, watched through the database.

The bot never trains in its own process (the event loop must keep answering). It
starts `twin train`, follows the run's row in `training_runs` for progress, and hands
the report to whoever asked. The database lock means a second start, from the bot,
the schedule or a terminal, finds the first run instead of starting another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from storage import Database
from storage import runs as runs_table
from storage.runs import TrainingRun

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0
_SECRET_WORDS = ("TOKEN", "HASH", "SESSION", "PASSWORD", "SECRET", "KEY")


def without_secrets(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment for a training process: twin's secrets (the bot token, the
    userbot's api_hash and session) stay behind; training needs none of them."""
    return {
        name: value
        for name, value in environment.items()
        if not (name.upper().startswith("TWIN_") and any(w in name.upper() for w in _SECRET_WORDS))
    }


@dataclass
class Outcome:
    """How a run ended: the report `twin train --json` printed, or the error."""

    report: dict[str, Any] | None
    error: str | None


class TrainingLauncher:
    def __init__(self, db: Database, command: list[str]) -> None:
        self.db = db
        self.command = command
        self._task: asyncio.Task[Outcome] | None = None

    async def current(self) -> TrainingRun | None:
        """The run in progress, whoever started it."""
        return await runs_table.running(self.db)

    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(
        self,
        trigger: str,
        on_progress: Callable[[TrainingRun], Awaitable[None]],
        on_done: Callable[[Outcome], Awaitable[None]],
    ) -> tuple[bool, TrainingRun | None]:
        """Start a run: (True, None). If one is running already, start nothing and
        return (False, that run); the run is None while its process is starting up."""
        await runs_table.release_stale(self.db)  # a run killed without a word
        running = await self.current()
        if running is not None or self.busy():
            return False, running
        self._task = asyncio.create_task(self._run(trigger, on_progress, on_done))
        return True, None

    async def _run(
        self,
        trigger: str,
        on_progress: Callable[[TrainingRun], Awaitable[None]],
        on_done: Callable[[Outcome], Awaitable[None]],
    ) -> Outcome:
        process = await asyncio.create_subprocess_exec(
            *self.command,
            "--trigger",
            trigger,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=without_secrets(os.environ),
        )
        output = asyncio.create_task(process.communicate())
        last_step = -1
        while not output.done():
            await asyncio.wait({output}, timeout=POLL_SECONDS)
            run = await runs_table.running(self.db)
            if run is not None and run.step != last_step:
                last_step = run.step
                try:
                    await on_progress(run)
                except Exception:  # a failed progress message must not stop the watch
                    log.exception("progress report failed")
        stdout, stderr = output.result()
        report = stdout.decode(errors="replace").strip().splitlines()
        if process.returncode == 0 and report:
            outcome = Outcome(json.loads(report[-1]), None)
        else:
            lines = stderr.decode(errors="replace").strip().splitlines()
            error = lines[-1] if lines else f"exit code {process.returncode}"
            outcome = Outcome(None, error.removeprefix("twin: error: "))
        log.info("training run ended: %s", outcome.error or "ok")
        await on_done(outcome)
        return outcome

    async def wait(self) -> Outcome | None:
        return await self._task if self._task is not None else None

    async def stop(self) -> None:
        """On shutdown: the training process goes on (the lock keeps it alone); stop
        watching it."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
