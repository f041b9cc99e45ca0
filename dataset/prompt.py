"""The prompt: one template, used to build training samples and generation prompts.

Training and generation must see byte-identical prompts for the same turns, or the
model is asked at run time a question it was never trained on. Everything that turns
turns into text (speaker tags, the burst separator, the template) lives here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

# The seed project's template: the context section, the other person's message, then
# the owner's reply.
DEFAULT_TEMPLATE = (
    "You (I) are chatting with a user R. Write a reply to his message.\n\n"
    "### Your previous communication:\n{context}\n\n"
    "### His new message:\n{instruction}\n\n"
    "### Your response:\n"
)
# When there is no earlier conversation (its first message) the context section goes.
DEFAULT_TEMPLATE_NO_CONTEXT = (
    "You (I) are chatting with a user R. Write a reply to his message.\n\n"
    "### His new message:\n{instruction}\n\n"
    "### Your response:\n"
)


class PromptSettings(BaseModel):
    """How turns become text. Changing any of these invalidates trained adapters."""

    model_config = ConfigDict(extra="forbid")

    template: str = DEFAULT_TEMPLATE
    template_no_context: str = DEFAULT_TEMPLATE_NO_CONTEXT
    owner_tag: str = "I"
    other_tag: str = "R"
    # Joins the messages of one burst into one turn; generation splits a reply on it.
    burst_separator: str = "\n"

    @model_validator(mode="after")
    def _check_templates(self) -> PromptSettings:
        for name, fields in (
            ("template", ("context", "instruction")),
            ("template_no_context", ("instruction",)),
        ):
            text = getattr(self, name)
            try:
                text.format(**{f: "" for f in fields})
            except (KeyError, IndexError, ValueError) as err:
                msg = f"{name} may only use {{context}} and {{instruction}}: {err}"
                raise ValueError(msg) from None
            if "{instruction}" not in text:
                raise ValueError(f"{name} must contain {{instruction}}")
        if not self.burst_separator:
            raise ValueError("burst_separator must not be empty")
        return self


class Prompt:
    """Formats samples and prompts with one `PromptSettings`."""

    def __init__(self, settings: PromptSettings | None = None) -> None:
        self.settings = settings or PromptSettings()

    def join_burst(self, messages: list[str]) -> str:
        """One turn from the messages of a burst. A separator inside a message would
        split it at generation, so it becomes a space."""
        separator = self.settings.burst_separator
        if len(messages) == 1:  # most turns: one message
            return messages[0].replace(separator, " ").strip()
        return separator.join([m.replace(separator, " ").strip() for m in messages])

    def split_burst(self, turn: str) -> list[str]:
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

    def render(self, context: str, instruction: str) -> str:
        """The prompt text; the response follows it directly."""
        template = self.settings.template if context else self.settings.template_no_context
        return template.format(context=context, instruction=instruction)
