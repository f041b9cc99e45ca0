"""The shipped sample persona is exactly what tests/persona.py writes, and is big enough."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests import persona
from twin.commands.demo import sample_export


def test_shipped_sample_is_reproducible(tmp_path: Path) -> None:
    persona.write(tmp_path / "result.json")
    assert (tmp_path / "result.json").read_bytes() == sample_export().read_bytes()


def test_sample_is_a_persona_worth_learning() -> None:
    export = json.loads(sample_export().read_text(encoding="utf-8"))
    personal = [c for c in export["chats"]["list"] if c["type"] == "personal_chat"]
    assert len(personal) >= 6
    assert sum(len(c["messages"]) for c in personal) >= 3000
    owner = f"user{export['personal_information']['user_id']}"
    mine = [m["text"] for c in personal for m in c["messages"] if m["from_id"] == owner]
    words = Counter(w for text in mine for w in text.split())
    assert words["короче"] > 20 and words["lol"] > 20  # Russian and English chats
    assert sum("🙃" in t for t in mine) > 50
