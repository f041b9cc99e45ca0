"""Training samples as the prompt shows them: each of the owner's turns with the turns
before it as its context, tagged and trimmed to the budget.

The context of a reply is made here and only here, for the training samples
(`SampleMaker`, which dataset.build hands to its workers) and for every reply
(twin.prompt.reply), so that a reply is asked exactly what its turn's sample taught.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from twin.dataset.conversations import Turn
from twin.dataset.samples import Sample, SampleRules, drop_reason
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt


@dataclass(frozen=True)
class SampleMaker:
    """dataset.samples.MakesSamples with one `PromptSettings`: plain data, so that it
    pickles to dataset.build's worker processes."""

    settings: PromptSettings

    @property
    def burst_separator(self) -> str:
        return self.settings.burst_separator

    def __call__(
        self,
        turns: list[Turn],
        *,
        chat_id: int,
        split: str,
        rules: SampleRules,
        measure: Callable[[str], int],
        dropped: Counter[str],
    ) -> Iterator[Sample]:
        """One sample per kept owner turn of the conversation `turns`."""
        prompt = Prompt(self.settings)
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


def owner_contexts(
    turns: list[Turn], prompt: Prompt, budget: int, measure: Callable[[str], int]
) -> Iterator[tuple[int, str]]:
    """(index, context) for every owner turn. The context is the tagged turns before
    the instruction (the turn before the owner's), dropped from the oldest side until
    they fit the budget; a single turn longer than the whole budget is left out rather
    than cut. Training samples and reply prompts both come from here."""
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
