"""A reply's text while it is generated: only the part that can no longer change.

A reply ends at a stop marker ("\\n###", "\\nR:", a caller's own), which must never be
shown, so text that could still become one is held back: after "...ok\\nR" the "\\nR"
waits for the next token. Whitespace at either end is held too (the finished reply is
stripped), and so is a character still being spelled out in byte tokens (the
tokenizer shows it as U+FFFD until its last byte comes). What the pieces add up to is
exactly the finished reply's text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def cut(text: str, markers: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop marker, and whether there was one. A marker at the
    very start counts: the reply is read as if a newline came before it."""
    text = "\n" + text
    ends = [found for marker in markers if (found := text.find(marker)) >= 0]
    return (text[1 : min(ends)], True) if ends else (text[1:], False)


class TextStream:
    """Hands `emit` each new piece of the reply that is safe to show."""

    def __init__(self, markers: Sequence[str], emit: Callable[[str], None]) -> None:
        self.markers = [m for m in markers if m]
        self.emit = emit
        self.shown = ""

    def update(self, text: str) -> None:
        """The reply's text so far is `text`."""
        text = cut(text, self.markers)[0].lstrip()
        safe = self._safe(text)
        if len(safe) > len(self.shown):
            self._show(safe)

    def finish(self, final: str) -> None:
        """The reply is done and its text is `final` (cut and stripped): the rest."""
        self._show(final)

    def _show(self, text: str) -> None:
        piece = text[len(self.shown) :]
        self.shown = text
        if piece:
            self.emit(piece)

    def _safe(self, text: str) -> str:
        """`text` without the end that must wait: the start of a marker, then a
        character still being spelled, then whitespace."""
        padded = "\n" + text
        held = 0
        for marker in self.markers:  # the longest end of the text that begins a marker
            for size in range(min(len(marker) - 1, len(padded)), 0, -1):
                if padded.endswith(marker[:size]):
                    held = max(held, min(size, len(text)))
                    break
        return text[: len(text) - held].rstrip().rstrip("\ufffd").rstrip()
