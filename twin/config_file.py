"""config.toml from the settings schema: every setting with its default and its comment.

Each setting is defined once, in its section's pydantic model, with its description;
the shipped config.toml is this module's output (`python -m twin.config_file >
config.toml`), and a test keeps the two equal, so the file cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from twin.settings import Settings

HEADER = """\
# twin configuration. Every setting is shown with its default.
#
# Any value can be overridden from the environment: TWIN_<KEY> for top-level keys and
# TWIN_<SECTION>__<KEY> for keys in a section (e.g. TWIN_TELEGRAM__OWNER_ID=123).
# Secrets (tokens, api hashes, sessions) belong in the environment, never in this file.
# Relative paths are relative to the directory twin is started from.
# This file is generated from the settings' definitions: python -m twin.config_file
"""


def render(settings: type[BaseModel] = Settings) -> str:
    """The config file for a settings model: top-level keys, then one table a section."""
    lines = [HEADER]
    sections = []
    for name, info in settings.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            sections.append((name, info.annotation))
        else:
            lines.extend(_field(name, info))
            lines.append("")
    for name, section in sections:
        lines.append(f"[{name}]")
        lines.extend(_comment(section.__doc__ or ""))
        for key, info in section.model_fields.items():
            lines.extend(_field(key, info))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _comment(text: str) -> list[str]:
    paragraphs = " ".join(line.strip() for line in text.strip().splitlines())
    return [f"# {line}" for line in _wrap(paragraphs)] if paragraphs else []


def _wrap(text: str, width: int = 86) -> list[str]:
    """Lines of at most `width` characters; an explicit newline in a description is kept."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > width:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        out.append(line)
    return out


def _field(key: str, info: FieldInfo) -> list[str]:
    lines = []
    if info.description:
        lines.extend(f"# {line}" for line in _wrap(info.description))
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("secret"):
        return lines  # a secret never has a line of its own here: the environment has it
    default = info.default
    if default is None:
        example = (info.examples or [None])[0]
        if example is None:
            raise ValueError(f"{key}: a setting without a default needs an example")
        lines.append(f"# {key} = {_value(example)}")
    else:
        # A friendlier spelling of the default (session_gap = "24h"), where one exists.
        lines.append(f"{key} = {_value(extra.get('shown', default))}")
    return lines


def _value(value: Any) -> str:
    """A TOML value: strings with line breaks as multi-line strings, the rest as JSON
    writes them (which TOML reads the same for these types)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str) and "\n" in value and value.strip():
        body = value.replace("\\", "\\\\").replace('"""', '""\\"')
        # TOML drops a line break right after the opening quotes: keep a leading one.
        return f'"""\n{body}"""' if body.startswith("\n") else f'"""{body}"""'
    if isinstance(value, float) and value < 0.001:
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


if __name__ == "__main__":
    sys.stdout.write(render())
