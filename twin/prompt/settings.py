"""The `[prompt]` section: the text the model sees.

A plain pydantic model, apart from the code that uses it, so that reading the
configuration never loads the prompt code. Each field's description is its comment in
config.toml.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The seed project's template: the context section, the other person's message, then
# the owner's reply. {memory} is empty without memory, so the text is then the seed's.
DEFAULT_TEMPLATE = (
    "You (I) are chatting with a user R. Write a reply to his message.\n\n"
    "{memory}### Your previous communication:\n{context}\n\n"
    "### His new message:\n{instruction}\n\n"
    "### Your response:\n"
)
# When there is no earlier conversation (its first message) the context section goes.
DEFAULT_TEMPLATE_NO_CONTEXT = (
    "You (I) are chatting with a user R. Write a reply to his message.\n\n"
    "{memory}### His new message:\n{instruction}\n\n"
    "### Your response:\n"
)
# What {memory} holds when there is something to remember: the owner's facts, then
# his past exchanges with messages like this one.
DEFAULT_FACTS_TEMPLATE = "### About you:\n{facts}\n\n"
DEFAULT_MEMORY_TEMPLATE = "### How you answered similar messages before:\n{exchanges}\n\n"


class PromptSettings(BaseModel):
    """The text the model sees. Changing any of this makes trained adapters useless."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        DEFAULT_TEMPLATE,
        description=(
            "{context} is the earlier conversation, {instruction} the message to answer,\n"
            "{memory} what the twin remembers (the [memory] section; empty without it)."
        ),
    )
    template_no_context: str = Field(
        DEFAULT_TEMPLATE_NO_CONTEXT, description="For a conversation's first message."
    )
    facts_template: str = Field(
        DEFAULT_FACTS_TEMPLATE, description="{memory}'s first part: your facts (memory.facts)."
    )
    memory_template: str = Field(
        DEFAULT_MEMORY_TEMPLATE,
        description="{memory}'s second part: your past exchanges, recalled for this message.",
    )
    owner_tag: str = Field("I", description="Speaker tags of the turns in {context}.")
    other_tag: str = "R"
    burst_separator: str = Field(
        "\n", description="Joins the messages of one burst into one turn; a reply is split on it."
    )

    @model_validator(mode="after")
    def _check_templates(self) -> PromptSettings:
        for name, fields, required in (
            ("template", ("context", "instruction", "memory"), "instruction"),
            ("template_no_context", ("instruction", "memory"), "instruction"),
            ("facts_template", ("facts",), "facts"),
            ("memory_template", ("exchanges",), "exchanges"),
        ):
            text = getattr(self, name)
            try:
                text.format(**{f: "" for f in fields})
            except (KeyError, IndexError, ValueError) as err:
                named = " and ".join(f"{{{f}}}" for f in fields)
                raise ValueError(f"{name} may only use {named}: {err}") from None
            if f"{{{required}}}" not in text:
                raise ValueError(f"{name} must contain {{{required}}}")
        if not self.burst_separator:
            raise ValueError("burst_separator must not be empty")
        return self
