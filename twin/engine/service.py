"""The reply engine behind an asyncio front, for the bot, the drafts and `twin chat`.

Generation takes seconds of CPU; the bot's event loop must not wait for it. One worker
thread owns the engine and runs requests in arrival order, so replies to one chat come
in the order their messages came (and the model is never used by two threads). The
service follows the registry: `refresh()` swaps in a newly activated adapter between
two replies.

Each prompt is built by twin.prompt.reply, which the service tells whether the adapter
it serves was trained with memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from storage import Database
from storage.rows import HistoryRow
from twin.engine.generate import Engine, Reply
from twin.engine.settings import GenerationSettings
from twin.memory.scopes import EVERYONE, Scope
from twin.model import registry
from twin.model.checkpoints import read_config
from twin.prompt.reply import ReplyPrompts
from twin.prompt.text import Prompt

T = TypeVar("T")
log = logging.getLogger(__name__)


class ReplyService:
    def __init__(self, make_engine: Callable[[], Engine], prompts: ReplyPrompts) -> None:
        self._make_engine = make_engine
        self._engine: Engine | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-reply")
        self.prompts = prompts
        self.pending = 0  # requests queued or running: /status shows it

    @property
    def prompt(self) -> Prompt:
        """The prompt's text form: how a reply splits into messages."""
        return self.prompts.prompt

    @property
    def remembers(self) -> bool:
        """Whether replies get memory (on, and the adapter served learned with it)."""
        return self.prompts.remembers

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        finally:
            self.pending -= 1

    @property
    def engine(self) -> Engine:
        """The engine, once start() has built it (its tokenizer counts from any thread)."""
        if self._engine is None:
            raise RuntimeError("the reply service has not started")
        return self._engine

    def _engine_now(self) -> Engine:
        """The engine, built on first use (in the worker thread: it takes seconds)."""
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    async def start(self, db: Database) -> None:
        await self._run(self._engine_now)
        await self.refresh(db)

    async def refresh(self, db: Database) -> str | None:
        """Serve the registry's active adapter if it is not served yet, with the owner's
        current facts; the adapter's path."""
        engine = await self._run(self._engine_now)
        base = read_config(engine.checkpoint_dir).name
        active = await registry.active_for(db, base)
        path = active.path if active is not None else None
        if path != engine.adapter:
            await self._run(engine.use_adapter, Path(path) if path else None)
            log.info("serving %s", f"adapter {active.id}" if active else "the base model")
        # The base model learned no prompt of twin's: memory as configured.
        trained_with_memory = registry.read_meta(Path(path)).get("memory", False) if path else True
        await self.prompts.refresh(db, trained_with_memory)
        return path

    async def reply(
        self,
        rows: Sequence[HistoryRow],
        settings: GenerationSettings,
        scope: Scope = EVERYONE,
        facts: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Reply:
        """A reply to the conversation in `rows`, whose last turn is the message to
        answer, remembering what `scope` allows (with `facts` for the owner's, when
        given). `on_text` gets the reply piece by piece as it is generated (in the
        worker thread: the caller hands the pieces on to its own loop)."""

        def work() -> Reply:
            engine = self._engine_now()
            text = self.prompts(rows, engine.count_tokens, scope, facts)
            return engine.generate(text, settings, on_text)

        return await self._run(work)

    async def close(self) -> None:
        await self._run(self.prompts.close)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
