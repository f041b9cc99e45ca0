"""The prompt's text form: one template, for training samples and replies alike.

Training and generation must see byte-identical prompts for the same turns, or the
model is asked at run time a question it was never trained on. Everything that turns
turns into text (speaker tags, the template, the memory section, where a reply ends)
lives here; only the burst separator is applied earlier, where turns are made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twin.prompt.settings import PromptSettings


class Prompt:
    """Formats samples and prompts with one `PromptSettings`."""

    def __init__(self, settings: PromptSettings | None = None) -> None:
        self.settings = settings or PromptSettings()

    def split_burst(self, turn: str) -> list[str]:
        """A reply's messages (dataset.conversations.join_burst joined a turn's)."""
        return [m.strip() for m in turn.split(self.settings.burst_separator) if m.strip()]

    def tagged(self, turn: str, is_owner: bool) -> str:
        """A turn as it appears in the context: `I: ...` or `R: ...`."""
        tag = self.settings.owner_tag if is_owner else self.settings.other_tag
        return f"{tag}: {turn}"

    def context(self, tagged_turns: list[str]) -> str:
        return "\n".join(tagged_turns)

    @property
    def stop_markers(self) -> list[str]:
        """Where a reply ends if the model does not stop by itself: the template's next
        section, or a speaker tag starting a new turn."""
        s = self.settings
        return ["\n###", f"\n{s.other_tag}:", f"\n{s.owner_tag}:"]

    def exchange(self, message: str, reply: str) -> str:
        """A remembered exchange: the message and the owner's reply, tagged as turns."""
        return f"{self.tagged(message, False)}\n{self.tagged(reply, True)}"

    def memory(self, facts: str, exchanges: list[str]) -> str:
        """What fills {memory}: the owner's facts and his remembered exchanges (from
        `exchange`), each section only when it has something."""
        s = self.settings
        text = s.facts_template.format(facts=facts) if facts else ""
        if exchanges:
            text += s.memory_template.format(exchanges="\n\n".join(exchanges))
        return text

    def render(self, context: str, instruction: str, memory: str = "") -> str:
        """The prompt text; the response follows it directly."""
        template = self.settings.template if context else self.settings.template_no_context
        return template.format(context=context, instruction=instruction, memory=memory)

    def neutral(self) -> str:
        """The prompt with no context and no message: what a reply is measured against
        (how much more likely the conversation makes it)."""
        return self.render("", "")

    def render_sample(self, sample: Mapping[str, Any]) -> str:
        """A sample's prompt (a line of samples.jsonl); "memory" is there when it was
        trained with memory."""
        return self.render(sample["input"], sample["instruction"], sample.get("memory", ""))
