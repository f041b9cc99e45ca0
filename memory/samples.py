"""Training samples get their memories the way replies will: trained as it is used.

Each sample recalls from conversations that began before its own (never its own reply,
nothing said after it), from every chat with its own chat's exchanges first, as a
draft does. `SampleMemory` is handed to dataset.build.build_dataset, which gives each
sample its "memory" field (and "recalled", the replies in it) as it writes the file:
the samples file is written once, whole.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from dataset.prompt import Prompt
from memory import scopes
from memory.recall import Recall
from memory.section import MemorySection
from memory.settings import MemorySettings
from storage.memory import ExchangeSearch


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
