"""What the twin remembers for one prompt: the text of its {memory}.

The owner's facts, then the exchanges recalled for the message being answered, best
first, as many as fit `memory.tokens` (an exchange longer than the whole budget is
skipped rather than cut). Training samples (`SampleMemory`) and replies
(twin.prompt.reply) get it from here alike, so an adapter trained with memory is served
exactly the prompt it learned from.

A training sample recalls from conversations that began before its own (never its own
reply, nothing said after it), from every chat with its own chat's exchanges first, as
a draft does. `SampleMemory` is handed to dataset.build.build_dataset, which gives each
sample its "memory" field (and "recalled", the replies in it) as it writes the file:
the samples file is written once, whole.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from storage.memory import ExchangeSearch
from storage.rows import ExchangeRow
from twin.memory import scopes
from twin.memory.recall import Recall
from twin.memory.scopes import Scope
from twin.memory.settings import MemorySettings
from twin.prompt.text import Prompt


class MemorySection:
    def __init__(
        self,
        prompt: Prompt,
        settings: MemorySettings,
        recall: Recall | None,
        measure: Callable[[str], int],
    ) -> None:
        self.prompt = prompt
        self.settings = settings
        self.recall = recall  # None: an empty history, nothing to recall
        self.measure = measure

    def __call__(self, message: str, scope: Scope, facts: str) -> str:
        """{memory} for a reply to `message` (empty for a conversation's opener)."""
        return self.section(self.exchanges(message, scope), facts)

    def exchanges(self, message: str, scope: Scope) -> list[ExchangeRow]:
        """The exchanges recalled for `message`, best first, as many as fit."""
        chosen: list[ExchangeRow] = []
        if message and self.recall is not None and scope.recalls:
            found = self.recall(
                [message],
                self.settings.k,
                before=scope.before,
                chat_id=scope.chat_id,
                only_this_chat=scope.only_this_chat,
            )
            room = self.settings.tokens
            for row in found:
                size = self.measure(self._text(row)) + 2  # +2: the blank line between them
                if size <= room:
                    chosen.append(row)
                    room -= size
        return chosen

    def section(self, exchanges: list[ExchangeRow], facts: str) -> str:
        """The text of {memory}: the facts, then `exchanges`."""
        return self.prompt.memory(facts.strip(), [self._text(row) for row in exchanges])

    def _text(self, row: ExchangeRow) -> str:
        return self.prompt.exchange(row.message, row.reply)


class SampleMemory:
    """Adds {memory} to one sample at a time, from the exchanges index of `db_path`
    (brought up to the history first: memory.index.refresh); counts the samples that
    recalled an exchange. A context manager: the index is open while it lives."""

    def __init__(
        self,
        db_path: Path,
        prompt: Prompt,
        settings: MemorySettings,
        measure: Callable[[str], int],
        facts: str,
    ) -> None:
        self.search = ExchangeSearch(db_path)
        self.build = MemorySection(prompt, settings, Recall(self.search), measure)
        self.facts = facts
        self.empty = self.build("", scopes.NO_RECALL, facts)  # facts only: an opener's memory
        self.recalled = 0

    def __call__(self, sample: dict[str, Any]) -> None:
        scope = scopes.training_sample(sample["chat_id"], sample["conversation"])
        exchanges = self.build.exchanges(sample["instruction"], scope)
        sample["memory"] = self.build.section(exchanges, self.facts)
        # The replies it holds: evaluation tells a reply it could copy from one it could
        # not (trainer.sense's repeat tasks).
        sample["recalled"] = [row.reply for row in exchanges]
        self.recalled += sample["memory"] != self.empty

    def __enter__(self) -> SampleMemory:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.search.close()
