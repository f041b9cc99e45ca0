"""The prompt of a reply: the one builder behind the bot's chat, the drafts, `twin chat`,
`twin reply` and `twin serve`.

From the chat's rows to the text the engine decodes from: the last conversation,
merged, scrubbed and trimmed exactly as the training samples were (the same turns,
twin.prompt.samples's contexts), with the owner's facts and what he remembers that the
scope allows. Memory goes in only when it is on and the adapter served was trained with
it: an adapter is asked only the kind of prompt it learned from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from storage import Database, StorageError
from storage.memory import ExchangeSearch
from storage.rows import HistoryRow
from twin.dataset.conversations import Turn, conversation_turns
from twin.dataset.pii import ScrubStats
from twin.memory.recall import Recall
from twin.memory.scopes import EVERYONE, Scope, earlier_than
from twin.memory.settings import MemorySettings
from twin.prompt.facts import owner_facts
from twin.prompt.memory import MemorySection
from twin.prompt.samples import owner_contexts
from twin.prompt.text import Prompt

log = logging.getLogger(__name__)


class ReplyPrompts:
    """Builds the prompt for the owner's next turn. Prompts are built one at a time (in
    the reply service's worker thread), so one index connection serves them all."""

    def __init__(
        self,
        prompt: Prompt,
        session_gap: int,
        context_tokens: int,
        memory: MemorySettings | None = None,
        db_path: Path | None = None,
    ) -> None:
        self.prompt = prompt
        self.session_gap = session_gap
        self.context_tokens = context_tokens
        self.memory = memory or MemorySettings(enabled=False)
        self.db_path = db_path  # the index memory recalls from
        self.facts = self.memory.facts  # /facts may replace them: refresh() reads them
        self.remembers = False  # memory on, and the adapter served was trained with it
        self._recall: Recall | None = None  # opened on first use

    async def refresh(self, db: Database, trained_with_memory: bool) -> None:
        """Follow the adapter served (did it learn prompts with memory?) and the owner's
        current facts."""
        self.remembers = self.memory.enabled and self.db_path is not None and trained_with_memory
        self.facts = await owner_facts(db, self.memory)

    def __call__(
        self,
        rows: Sequence[HistoryRow],
        count_tokens: Callable[[str], int],
        scope: Scope = EVERYONE,
        facts: str | None = None,
    ) -> str:
        """The prompt for the owner's next turn after `rows` (oldest first), with what
        the owner remembers that `scope` may hear, and his facts (`facts` instead, when
        given)."""
        separator = self.prompt.settings.burst_separator
        conversations = list(conversation_turns(rows, self.session_gap, separator, ScrubStats()))
        turns = conversations[-1] if conversations else []
        memory = self._memory(turns, scope, count_tokens, self.facts if facts is None else facts)
        return reply_prompt(turns, self.prompt, self.context_tokens, count_tokens, memory)

    def _memory(
        self, turns: list[Turn], scope: Scope, measure: Callable[[str], int], facts: str
    ) -> Callable[[str], str] | None:
        if not self.remembers:
            return None
        section = MemorySection(self.prompt, self.memory, self._recall_now(), measure)
        # This conversation is in the context already; memory recalls the ones before it.
        scope = earlier_than(scope, turns[0].date if turns else None)
        return lambda message: section(message, scope, facts)

    def _recall_now(self) -> Recall | None:
        if self._recall is None and self.db_path is not None:
            try:
                self._recall = Recall(ExchangeSearch(self.db_path, any_thread=True))
            except StorageError as err:  # no database yet: replies without memories
                log.warning("no memory: %s", err)
        return self._recall

    def close(self) -> None:
        if self._recall is not None:
            self._recall.search.close()


def reply_prompt(
    turns: list[Turn],
    prompt: Prompt,
    budget: int,
    measure: Callable[[str], int],
    memory: Callable[[str], str] | None = None,
) -> str:
    """The prompt for the owner's next turn after `turns`: exactly the prompt a training
    sample of that turn would have had. `memory` gives {memory} for the message answered."""
    upcoming = [*turns, Turn(is_owner=True, text="", date=0, media_only=False)]
    index, context = list(owner_contexts(upcoming, prompt, budget, measure))[-1]
    instruction = upcoming[index - 1].text if index > 0 else ""
    return prompt.render(context, instruction, memory(instruction) if memory else "")
