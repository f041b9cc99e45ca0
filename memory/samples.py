"""Training samples get their memories the way replies will: trained as it is used.

Each sample recalls from conversations that began before its own (never its own reply,
nothing said after it), from every chat with its own chat's exchanges first, as a
draft does. The samples file is rewritten with a "memory" field (and "recalled", the
replies in it), atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from dataset.build import read_samples
from dataset.prompt import Prompt
from memory import scopes
from memory.recall import Recall
from memory.section import MemorySection
from memory.settings import MemorySettings
from storage.memory import ExchangeSearch


def remember(
    samples_path: Path,
    db_path: Path,
    prompt: Prompt,
    settings: MemorySettings,
    measure: Callable[[str], int],
    facts: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Add each sample's {memory}; how many samples recalled an exchange."""
    samples = read_samples(samples_path)
    recalled = 0
    with ExchangeSearch(db_path) as search:
        build = MemorySection(prompt, settings, Recall(search), measure)
        empty = build("", scopes.NO_RECALL, facts)  # facts only: an opener's memory
        for done, sample in enumerate(samples, 1):
            scope = scopes.training_sample(sample["chat_id"], sample["conversation"])
            exchanges = build.exchanges(sample["instruction"], scope)
            sample["memory"] = build.section(exchanges, facts)
            # The replies it holds: evaluation tells a reply it could copy from one it
            # could not (trainer.sense's repeat tasks).
            sample["recalled"] = [row.reply for row in exchanges]
            recalled += sample["memory"] != empty
            if on_progress is not None:
                on_progress(done, len(samples))
    partial = samples_path.with_name(samples_path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as file:
            file.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
        os.replace(partial, samples_path)
    finally:
        partial.unlink(missing_ok=True)
    return recalled
