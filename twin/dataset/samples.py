"""A training sample, and the rules for which of the owner's turns become one.

Every kept turn of the owner is a sample: `instruction` is the other person's turn
before it (empty when the owner opens the conversation), `input` the earlier turns as
the prompt shows them (twin.prompt.samples renders them), `output` the owner's turn.
The same rules decide which of his replies memory keeps (twin.memory.exchanges).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from twin.dataset.conversations import Turn

_quote = json.encoder.encode_basestring  # the C escaper json.dumps uses for str


@dataclass(frozen=True, slots=True)
class SampleRules:
    """Which owner turns become samples, and how much context they get."""

    budget: int  # of the context, in whatever `measure` counts
    drop_openers: bool = False
    min_response_chars: int = 1
    max_response_chars: int = 1000


@dataclass(slots=True)
class Sample:
    instruction: str
    input: str
    output: str
    split: str
    chat_id: int
    date: int
    conversation: int  # when its conversation began: memory recalls only older ones

    def as_json(self) -> str:
        """One JSONL line: the text json.dumps(ensure_ascii=False) writes for the dict,
        built directly (a fraction of the cost, for a million samples)."""
        return (
            f'{{"instruction": {_quote(self.instruction)}, "input": {_quote(self.input)}, '
            f'"output": {_quote(self.output)}, "split": {_quote(self.split)}, '
            f'"chat_id": {self.chat_id}, "date": {self.date}, '
            f'"conversation": {self.conversation}}}'
        )


class MakesSamples(Protocol):
    """What turns a conversation into samples (twin.prompt.samples.SampleMaker: the
    context as the prompt shows it). Handed to build_dataset, and pickled to its workers."""

    @property
    def burst_separator(self) -> str:
        """What joins a burst's messages into one turn."""
        ...

    def __call__(
        self,
        turns: list[Turn],
        *,
        chat_id: int,
        split: str,
        rules: SampleRules,
        measure: Callable[[str], int],
        dropped: Counter[str],
    ) -> Iterator[Sample]: ...


def seen_from_the_other_side(turns: list[Turn]) -> list[Turn]:
    """The conversation with the speakers swapped: the other person's turns are then
    the owner's, and their samples read like the owner's with the tags the other way
    (dataset.other_turns)."""
    return [replace(turn, is_owner=not turn.is_owner) for turn in turns]


def drop_reason(turn: Turn, has_instruction: bool, rules: SampleRules) -> str | None:
    if not has_instruction and rules.drop_openers:
        return "opener"
    if turn.media_only:
        return "media_only"
    if len(turn.text) < rules.min_response_chars:
        return "response_too_short"
    if len(turn.text) > rules.max_response_chars:
        return "response_too_long"
    return None
