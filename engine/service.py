"""The reply engine behind an asyncio front, for the bot, the drafts and `twin chat`.

Generation takes seconds of CPU; the bot's event loop must not wait for it. One worker
thread owns the engine and runs requests in arrival order, so replies to one chat come
in the order their messages came (and the model is never used by two threads). The
service follows the registry: `refresh()` swaps in a newly activated adapter between
two replies.

Memory (the owner's facts and past exchanges, memory.section) goes into a prompt only
when it is on and the adapter served was trained with it: an adapter is asked only the
kind of prompt it learned from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from dataset.conversations import Turn, conversation_turns
from dataset.pii import ScrubStats
from dataset.prompt import Prompt
from dataset.samples import reply_prompt
from engine.generate import Engine, Reply
from engine.settings import GenerationSettings
from memory.facts import owner_facts
from memory.recall import Recall
from memory.scopes import EVERYONE, Scope, earlier_than
from memory.section import MemorySection
from memory.settings import MemorySettings
from model import registry
from model.checkpoints import read_config
from storage import Database, StorageError
from storage.memory import ExchangeSearch
from storage.rows import HistoryRow

T = TypeVar("T")
log = logging.getLogger(__name__)


class ReplyService:
    def __init__(
        self,
        make_engine: Callable[[], Engine],
        prompt: Prompt,
        session_gap: int,
        context_tokens: int,
        memory: MemorySettings | None = None,
        db_path: Path | None = None,
    ) -> None:
        self._make_engine = make_engine
        self._engine: Engine | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-reply")
        self.prompt = prompt
        self.session_gap = session_gap
        self.context_tokens = context_tokens
        self.memory = memory or MemorySettings(enabled=False)
        self.db_path = db_path  # the index memory recalls from
        self.facts = self.memory.facts  # /facts may replace them: refresh() reads them
        self.remembers = False  # memory on, and the adapter served was trained with it
        self._recall: Recall | None = None  # opened on first use
        self.pending = 0  # requests queued or running: /status shows it

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
        self.remembers = self.memory.enabled and self.db_path is not None and trained_with_memory
        self.facts = await owner_facts(db, self.memory)
        return path

    def _section(self, measure: Callable[[str], int]) -> MemorySection:
        """The memory section builder; the index is opened on first use. Prompts are
        built one at a time (in the worker thread), so one connection serves them all."""
        if self._recall is None and self.db_path is not None:
            try:
                self._recall = Recall(ExchangeSearch(self.db_path, any_thread=True))
            except StorageError as err:  # no database yet: replies without memories
                log.warning("no memory: %s", err)
        return MemorySection(self.prompt, self.memory, self._recall, measure)

    def prompt_for(
        self,
        rows: Sequence[HistoryRow],
        count_tokens: Callable[[str], int],
        scope: Scope = EVERYONE,
        facts: str | None = None,
    ) -> str:
        """The prompt for the owner's next turn after `rows` (oldest first): the last
        conversation, merged, scrubbed and trimmed exactly as the training samples were,
        with what the owner remembers that `scope` may hear, and his facts (`facts`
        instead, when given)."""
        conversations = list(conversation_turns(rows, self.session_gap, self.prompt, ScrubStats()))
        turns = conversations[-1] if conversations else []
        memory = self._memory(turns, scope, count_tokens, self.facts if facts is None else facts)
        return reply_prompt(turns, self.prompt, self.context_tokens, count_tokens, memory)

    def _memory(
        self, turns: list[Turn], scope: Scope, measure: Callable[[str], int], facts: str
    ) -> Callable[[str], str] | None:
        if not self.remembers:
            return None
        section = self._section(measure)
        # This conversation is in the context already; memory recalls the ones before it.
        scope = earlier_than(scope, turns[0].date if turns else None)
        return lambda message: section(message, scope, facts)

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
            text = self.prompt_for(rows, engine.count_tokens, scope, facts)
            return engine.generate(text, settings, on_text)

        return await self._run(work)

    async def close(self) -> None:
        def shut() -> None:
            if self._recall is not None:
                self._recall.search.close()

        await self._run(shut)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
