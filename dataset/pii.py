"""Scrubbing personal data out of text before it reaches a training sample.

A model can recite what it was trained on, so anything that identifies or unlocks
something (an e-mail, a phone number, a card, an IBAN, a link carrying a key, a
password) is replaced by a typed placeholder such as `[PHONE]`. The placeholder keeps
the sentence natural ("позвони мне [PHONE]"), so the twin still learns how its owner
talks about such things without learning the things.

Most messages contain nothing of the kind, so one cheap regex decides whether the full
set of detectors runs at all; the expensive phone parser (`phonenumbers`) only sees
digit runs that look like phone numbers and are not an order number, a price or a date.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import phonenumbers

EMAIL, PHONE, CARD, IBAN, URL, SECRET = "EMAIL", "PHONE", "CARD", "IBAN", "URL", "SECRET"
TYPES = (EMAIL, PHONE, CARD, IBAN, URL, SECRET)

# Every detection needs one of these characters (a digit, '@', a link's '/', a secret's
# ':' or '='): most chat messages have none and cost one scan of a character class.
PII_SIGNS = re.compile(r"[\d@:=/]")
# Then anything that could start a detection: a run of digits, '@', a link, a secret's
# label, or two capitals and two digits (an IBAN).
_MAYBE = re.compile(
    r"\d(?:[ ().-]{0,2}\d){6}|@|https?://|www\.|pass|pwd|парол|пин|pin|код|code|token|токен|"
    r"secret|[A-Z]{2}\d{2}",
    re.IGNORECASE,
)

# A secret's label, up to three more words ("пароль от вайфая", "the code is"), then
# ':' or '=' and the value.
_SECRET = re.compile(
    r"(?P<label>\b(?:password|passwd|pass|pwd|pin|passcode|code|token|secret|"
    r"пароль|пасс|пин|код|токен)\b(?:[ \t]+[\w-]+){0,3}?[ \t]*[:=][ \t]*)"
    r"(?P<value>(?!\[[A-Z]+\])[^\s,;]+)",  # not a placeholder already made
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
# A link "carries a key" when a query parameter is named like one, or a path segment is
# a long random-looking token (invite links, reset links, signed URLs).
_URL_SECRET_PARAM = re.compile(
    r"[?&#](?:[\w.-]*(?:token|key|secret|sig|signature|auth|session|sid|password|pass|"
    r"pwd|code|hash|invite|ticket)[\w.-]*)=",
    re.IGNORECASE,
)
_URL_SEGMENT = re.compile(r"[/=]([A-Za-z0-9_-]{16,})(?=[/?#&]|$)")  # path parts, values
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-zА-Яа-я]{2,}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_DIGIT_RUN = re.compile(r"(?<![\w+])\+?\(?\d[\d \t().-]{5,}\d(?![\w])")
# Words right before a number that say it is not a phone (or a card).
_NOT_A_PHONE = re.compile(
    r"(?:заказ\w*|order|№|#|инн|inn|огрн|снилс|счёт|счет|invoice|рейс|flight|"
    r"артикул|sku|трек\w*|track\w*|tracking|посылк\w*|ticket|билет\w*|id|isbn)\W{0,3}$",
    re.IGNORECASE,
)
_AFTER_COUNTRY_CODE = re.compile(r"\b[A-Z]{2}\d{2} ?$")
_DATE_LIKE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$")


@dataclass
class ScrubStats:
    """How many replacements of each type were made (for `twin dataset`'s report)."""

    counts: Counter[str] = field(default_factory=Counter)


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(candidate.strip()):
        return False
    try:
        number = phonenumbers.parse(candidate, "RU")
    except phonenumbers.NumberParseException:
        return False
    if phonenumbers.is_valid_number(number):
        return True
    # Numbers of countries phonenumbers does not validate (or test ranges such as
    # 555): accept a clearly written international or Russian mobile format.
    return bool(
        re.fullmatch(r"\+\d[\d \t().-]{8,}", candidate)
        or re.fullmatch(r"(?:8|\+7)[ (]*9\d{2}[) ]*\d{3}[ -]?\d{2}[ -]?\d{2}", candidate)
        or re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", candidate)  # North American
    )


def _digit_runs(text: str, stats: ScrubStats) -> str:
    """Cards (Luhn) and phone numbers among the runs of digits."""
    out = []
    last = 0
    for match in _DIGIT_RUN.finditer(text):
        candidate = match.group().rstrip(" .-")
        end = match.start() + len(candidate)
        before = text[max(0, match.start() - 24) : match.start()]
        digits = re.sub(r"\D", "", candidate)
        kind = None
        if (
            13 <= len(digits) <= 19
            and luhn_ok(digits)
            and re.fullmatch(r"[\d -]+", candidate)
            and not _AFTER_COUNTRY_CODE.search(before)  # the rest of a rejected IBAN
        ):
            kind = CARD
        elif not _NOT_A_PHONE.search(before) and _is_phone(candidate):
            kind = PHONE
        if kind is not None:
            out.append(text[last : match.start()])
            out.append(f"[{kind}]")
            stats.counts[kind] += 1
            last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _replace(
    pattern: re.Pattern[str],
    kind: str,
    text: str,
    stats: ScrubStats,
    accept: Callable[[re.Match[str]], bool] | None = None,
) -> str:
    def substitute(match: re.Match[str]) -> str:
        if accept is not None and not accept(match):
            return match.group()
        stats.counts[kind] += 1
        return f"[{kind}]"

    return pattern.sub(substitute, text)


def _looks_random(segment: str) -> bool:
    """A token mixes character classes; a slug ("my-long-post-title") does not."""
    classes = sum(
        (
            any(c.islower() for c in segment),
            any(c.isupper() for c in segment),
            any(c.isdigit() for c in segment),
        )
    )
    return classes >= 2 and segment.count("-") < 3


def _url_carries_key(match: re.Match[str]) -> bool:
    url = match.group()
    if _URL_SECRET_PARAM.search(url):
        return True
    return any(_looks_random(m.group(1)) for m in _URL_SEGMENT.finditer(url))


def scrub(text: str, stats: ScrubStats | None = None) -> str:
    """`text` with every piece of personal data replaced by `[TYPE]`."""
    if not text or PII_SIGNS.search(text) is None or _MAYBE.search(text) is None:
        return text
    stats = stats if stats is not None else ScrubStats()

    def secret(match: re.Match[str]) -> str:
        stats.counts[SECRET] += 1
        return f"{match.group('label')}[{SECRET}]"

    text = _replace(_URL, URL, text, stats, _url_carries_key)
    text = _SECRET.sub(secret, text)
    text = _replace(_EMAIL, EMAIL, text, stats)
    text = _replace(_IBAN, IBAN, text, stats, lambda m: iban_ok(m.group()))
    return _digit_runs(text, stats)
