"""The prompt's text form: the template with and without an earlier conversation, and
templates that would render wrong refused when the settings load."""

from __future__ import annotations

import pytest

from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt


def test_prompt_renders_with_and_without_context() -> None:
    prompt = Prompt()
    with_context = prompt.render("R: a\nI: b", "c")
    assert with_context.startswith("You (I) are chatting with a user R.")
    assert (
        "### Your previous communication:\nR: a\nI: b\n\n### His new message:\nc\n\n"
        in with_context
    )
    assert with_context.endswith("### Your response:\n")
    assert "previous communication" not in prompt.render("", "c")


def test_bad_templates_are_refused() -> None:
    with pytest.raises(ValueError, match="instruction"):
        PromptSettings(template="no placeholders {context}")
    with pytest.raises(ValueError, match="may only use"):
        PromptSettings(template="{context} {instruction} {oops}")
