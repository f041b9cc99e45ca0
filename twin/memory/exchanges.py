"""A conversation's exchanges: each of the owner's turns with the turn it answered.

They come from the very turns training samples come from (dataset.conversations:
merged, placeholders for media, personal data scrubbed) and obey the same rules for
which of the owner's turns count (dataset.samples), so the memory holds nothing a
training sample could not show, and a reply recalled reads like a reply trained on.
"""

from __future__ import annotations

from collections.abc import Iterator

from storage.rows import ExchangeRow
from twin.dataset.conversations import Turn
from twin.dataset.samples import SampleRules, drop_reason


def conversation_exchanges(
    turns: list[Turn], chat_id: int, rules: SampleRules
) -> Iterator[ExchangeRow]:
    """The exchanges of one conversation, in order. A conversation the owner opens has
    no exchange for that first turn: it answered nothing."""
    began = turns[0].date if turns else 0
    for index in range(1, len(turns)):
        turn = turns[index]
        if turn.is_owner and drop_reason(turn, True, rules) is None:
            yield ExchangeRow(chat_id, began, turn.date, turns[index - 1].text, turn.text)
