"""The reply engine behind an asyncio front, for the bot, the drafts and `twin chat`.

Generation takes seconds of CPU; the bot's event loop must not wait for it. One worker
thread owns the engine and runs requests in arrival order, so replies to one chat come
in the order their messages came (and the model is never used by two threads). The
service follows the registry: `refresh()` swaps in a newly activated adapter between
two replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from dataset.conversations import conversation_turns
from dataset.pii import ScrubStats
from dataset.prompt import Prompt
from dataset.samples import reply_prompt
from engine.generate import Reply, ReplyEngine
from engine.settings import GenerationSettings
from model import registry
from model.checkpoints import read_config
from storage import Database
from storage.rows import HistoryRow

T = TypeVar("T")
log = logging.getLogger(__name__)


class ReplyService:
    def __init__(
        self,
        make_engine: Callable[[], ReplyEngine],
        prompt: Prompt,
        session_gap: int,
        context_tokens: int,
    ) -> None:
        self._make_engine = make_engine
        self._engine: ReplyEngine | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-reply")
        self.prompt = prompt
        self.session_gap = session_gap
        self.context_tokens = context_tokens
        self.pending = 0  # requests queued or running: /status shows it

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        finally:
            self.pending -= 1

    def _engine_now(self) -> ReplyEngine:
        """The engine, built on first use (in the worker thread: it takes seconds)."""
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    async def start(self, db: Database) -> None:
        await self._run(self._engine_now)
        await self.refresh(db)

    async def refresh(self, db: Database) -> str | None:
        """Serve the registry's active adapter if it is not served yet; its path."""
        engine = await self._run(self._engine_now)
        base = read_config(engine.checkpoint_dir).name
        active = await registry.active_for(db, base)
        path = active.path if active is not None else None
        if path != engine.adapter:
            await self._run(engine.use_adapter, Path(path) if path else None)
            log.info("serving %s", f"adapter {active.id}" if active else "the base model")
        return path

    def prompt_for(self, rows: Sequence[HistoryRow], count_tokens: Callable[[str], int]) -> str:
        """The prompt for the owner's next turn after `rows` (oldest first): the last
        conversation, merged, scrubbed and trimmed exactly as the training samples were."""
        conversations = list(conversation_turns(rows, self.session_gap, self.prompt, ScrubStats()))
        turns = conversations[-1] if conversations else []
        return reply_prompt(turns, self.prompt, self.context_tokens, count_tokens)

    async def reply(self, rows: Sequence[HistoryRow], settings: GenerationSettings) -> Reply:
        """A reply to the conversation in `rows`, whose last turn is the message to answer."""

        def work() -> Reply:
            engine = self._engine_now()
            text = self.prompt_for(rows, engine.count_tokens)
            return engine.generate(text, settings)

        return await self._run(work)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
