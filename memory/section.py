"""What the twin remembers for one reply: the text of the prompt's {memory}.

The owner's facts, then the exchanges recalled for the message being answered, best
first, as many as fit `memory.tokens` (an exchange longer than the whole budget is
skipped rather than cut). Training samples and replies get it from here alike, so an
adapter trained with memory is served exactly the prompt it learned from.
"""

from __future__ import annotations

from collections.abc import Callable

from dataset.prompt import Prompt
from memory.recall import Recall
from memory.scopes import Scope
from memory.settings import MemorySettings
from storage.rows import ExchangeRow


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
