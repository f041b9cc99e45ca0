"""A conversation's turns become instruction samples.

Every turn of the owner is a sample: `instruction` is the other person's turn before
it (empty when the owner opens the conversation), `input` the earlier turns with
speaker tags, trimmed from the oldest side to a budget, `output` the owner's turn.

`seen_from_the_other_side` turns a conversation around, so that the other person's
turns can become samples the same way (dataset.other_turns).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from dataset.conversations import Turn
from dataset.prompt import Prompt

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


def conversation_samples(
    turns: list[Turn],
    *,
    chat_id: int,
    split: str,
    prompt: Prompt,
    rules: SampleRules,
    measure: Callable[[str], int],
    dropped: Counter[str],
) -> Iterator[Sample]:
    """One sample per kept owner turn."""
    for index, context in owner_contexts(turns, prompt, rules.budget, measure):
        turn = turns[index]
        # Merged turns alternate, so only a conversation's first turn has no instruction.
        has_instruction = index > 0
        reason = drop_reason(turn, has_instruction, rules)
        if reason:
            dropped[reason] += 1
            continue
        yield Sample(
            instruction=turns[index - 1].text if has_instruction else "",
            input=context,
            output=turn.text,
            split=split,
            chat_id=chat_id,
            date=turn.date,
            conversation=turns[0].date,
        )


def seen_from_the_other_side(turns: list[Turn]) -> list[Turn]:
    """The conversation with the speakers swapped: the other person's turns are then
    the owner's, and their samples read like the owner's with the tags the other way."""
    return [replace(turn, is_owner=not turn.is_owner) for turn in turns]


def owner_contexts(
    turns: list[Turn], prompt: Prompt, budget: int, measure: Callable[[str], int]
) -> Iterator[tuple[int, str]]:
    """(index, context) for every owner turn. The context is the tagged turns before
    the instruction (the turn before the owner's), dropped from the oldest side until
    they fit the budget; a single turn longer than the whole budget is left out rather
    than cut. Training samples and generation prompts both come from here."""
    mine, theirs = prompt.tagged("", True), prompt.tagged("", False)
    tagged = [(mine if turn.is_owner else theirs) + turn.text for turn in turns]
    sizes = [measure(line) + 1 for line in tagged]  # +1: the newline that joins them
    first = 0  # the context of turn `index` is tagged[first : index - 1]
    size = 0
    for index, turn in enumerate(turns):
        if index >= 2:  # turn index-1 is the instruction; index-2 joins the context
            size += sizes[index - 2]
            while size > budget:
                size -= sizes[first]
                first += 1
        if turn.is_owner:
            yield index, "\n".join(tagged[first : index - 1]) if index >= 2 else ""


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
