"""What the twin may send on its own, in a chat the owner switched to auto by hand.

Auto mode sends without a person reading first, so it takes only replies that could
not embarrass the owner: nothing the model copied from scrubbed training text
([PHONE], [EMAIL], [SECRET], [photo], [poll: ...]), no link, address, number or
mention it may have made up, no leaked prompt, nothing long, nothing that loops.
Anything in doubt stays a draft and waits for the owner.
"""

from __future__ import annotations

import re

from twin.dataset.conversations import PLACEHOLDER

MAX_CHARS = 300
_LINK = re.compile(r"https?://|www\.|\bt\.me/|\b[\w.-]+\.(com|ru|org|net|io|me)\b", re.I)
_CONTACT = re.compile(r"@\w{3,}|\d[\d\s()+-]{6,}\d")
_PROMPT = re.compile(r"(^|\n)\s*(###|[IR]:)")
_WORD = re.compile(r"\w+")


def refusal(text: str) -> str | None:
    """Why `text` may not go out unread; None when it may."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(stripped) > MAX_CHARS:
        return f"longer than {MAX_CHARS} characters"
    if PLACEHOLDER.search(stripped):
        return "a placeholder such as [PHONE] or [photo]"
    if _LINK.search(stripped):
        return "a link"
    if _CONTACT.search(stripped):
        return "a mention or a long number"
    if _PROMPT.search(stripped):
        return "text of the prompt"
    if loops(stripped):
        return "it repeats itself"
    return None


def loops(text: str) -> bool:
    """One word or phrase over and over, a line said twice, or a character run."""
    if re.search(r"(.)\1{7,}", text):
        return True
    lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
    if len(lines) != len(set(lines)):
        return True
    words = _WORD.findall(text.lower())
    if len(words) >= 6 and len(set(words)) / len(words) < 0.5:
        return True
    return any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
