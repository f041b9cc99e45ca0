"""Scrubbing personal data out of text before it reaches a training sample.

A model can recite what it was trained on, so anything that identifies or unlocks
something (an e-mail, a phone number, a card, an IBAN or a bank account, a link
carrying a key or an invite, a password, a one-time code, an API key or bot token, a
tax or insurance number, a passport, a crypto wallet or its seed phrase, a home
address) is replaced by a typed placeholder such as `[PHONE]`. The placeholder keeps
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
from functools import cache

import phonenumbers
from mnemonic import Mnemonic

EMAIL, PHONE, CARD, IBAN, URL, SECRET = "EMAIL", "PHONE", "CARD", "IBAN", "URL", "SECRET"
CODE, ACCOUNT, INN, SNILS, PASSPORT = "CODE", "ACCOUNT", "INN", "SNILS", "PASSPORT"
WALLET, SEED, ADDRESS = "WALLET", "SEED", "ADDRESS"
TYPES = (
    EMAIL, PHONE, CARD, IBAN, URL, SECRET, CODE, ACCOUNT, INN, SNILS, PASSPORT, WALLET,
    SEED, ADDRESS,
)  # fmt: skip

# Every detection needs one of these characters (a digit, '@', a link's '/', a secret's
# ':' or '='): most chat messages have none and cost one scan of a character class.
PII_SIGNS = re.compile(r"[\d@:=/]")
# Then anything that could start a detection: a run of digits, '@', a link, a secret's
# label, or two capitals and two digits (an IBAN).
_MAYBE = re.compile(  # matched against the lowercased text: case-insensitive, and fast
    r"\d(?:[ ().-]{0,2}\d){3}|@|https?://|www\.|t\.me/|telegram\.me/|bc1|0x|sk[-_]|rk_|"
    r"gh[pousr]_|github_|glpat-|akia|aiza|xox[abprs]-|eyj|[13t][1-9a-z]{25}|[a-z]{2}\d{2}|"
    r"[eu]q[a-z0-9_-]{46}|pass|pwd|парол|пин|pin|код|code|token|токен|secret|otp|паспорт|"
    r"серия|ул\.|улиц|просп|пр-т|пр\.|пер\.|переул|наб\.|бульв|шоссе|\bд\.|\bкв\b|\bкв\.|"
    r"street|\bst\.|avenue|\bave\b|\broad\b|\brd\b|\blane\b|blvd|\bdrive\b|\bapt\b|\bflat\b|"
    r"\bunit\b"
)

# A secret's label, up to three more words ("пароль от вайфая", "the code is"), then
# ':' or '=' and the value: one token, or a passphrase of plain words ("correct horse
# battery staple") up to a comma or the line's end.
_SECRET = re.compile(
    r"(?P<label>\b(?:password|passwd|pass|pwd|pin|passcode|code|token|secret|"
    r"пароль|пасс|пин|код|токен)\b(?:[ \t]+(?!\d+\b)[\w-]+){0,3}?[ \t]*[:=][ \t]*)"
    r"(?P<value>(?!\[[A-Z]+\])"  # not a placeholder already made
    r"(?:[^\W\d_]+(?:[ \t]+[^\W\d_]+){0,5}(?![^\s,;])|[^\s,;]+))",
    re.IGNORECASE,
)
# A password said without ':' ("пароль от вайфая qwerty123", "password is hunter2"):
# the label, up to three words without digits, maybe "is"/"это"/a dash, then a value
# that looks made up: letters with a digit or a symbol, or four digits or more (not a
# year; not after "pass", the English verb: "pass 1000 rubles").
_SAID_SECRET = re.compile(
    r"(?P<label>\b(?P<word>password|passwd|pwd|passcode|pass|пароль|пасс)\b"
    r"(?:[ \t]+(?![\w-]*\d)[\w-]+){0,3}?[ \t]+(?:[—–-][ \t]+)?)"
    r"(?P<value>(?!\[[A-Z]+\])(?:(?=[^\s,;]*[^\W\d_])(?=[^\s,;]*[\d!@#$%^&*_+=?~])"
    r"[^\s,;]{4,}|\d{4,})(?![^\s,;]))",
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
# Invite links, with or without a scheme: whoever has one can join the chat.
_INVITE = re.compile(
    r"(?<![\w/.])(?:https?://)?(?:t\.me|telegram\.me)/(?:\+|joinchat/)[\w-]{6,}", re.IGNORECASE
)
# Keys that identify themselves by their shape, with no label: Telegram bot tokens,
# OpenAI, GitHub, GitLab, AWS, Google, Slack, Stripe keys and JSON web tokens.
_KEY = re.compile(
    r"\b\d{8,10}:[A-Za-z0-9_-]{35}\b|\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{40,}|\bglpat-[A-Za-z0-9_-]{20,}|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{35}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\b[rs]k_live_[A-Za-z0-9]{16,}"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
)
# Wallets: Bitcoin (bech32 and base58), Ethereum and its kin, Tron, TON.
_WALLET = re.compile(
    r"\b(?:bc1[ac-hj-np-z02-9]{25,87}|[13][1-9A-HJ-NP-Za-km-z]{25,34}|0x[0-9a-fA-F]{40}"
    r"|T[1-9A-HJ-NP-Za-km-z]{33}|(?:EQ|UQ)[A-Za-z0-9_-]{46})\b"
)
# A one-time code after its label, with no ':' ("код 123456", "the code is 771204").
_CODE = re.compile(
    r"(?P<label>\b(?:код|кода|коды|code|codes|otp|пин|pin)\b(?:[ \t]+(?!\d)[\w-]+){0,3}?"
    r"[ \t]+(?:[—–-][ \t]+)?)(?P<value>\d{4,8})\b",
    re.IGNORECASE,
)
# A passport's series and number after its label ("паспорт 4510 123456").
_PASSPORT = re.compile(
    r"(?P<label>\b(?:паспорт\w*|серия|passport)\b[^\d\n]{0,24})"
    r"(?P<value>\d{2}[ ]?\d{2}(?:[ ]?(?:№|номер|no\.?|n)?[ ]?)\d{6})\b",
    re.IGNORECASE,
)
# A home address: a street and a house number, often a flat (RU and EN).
_ADDRESS = re.compile(
    r"(?:(?:\b[А-ЯЁ][а-яё]+[ \t]+)?"  # "Невский" in "Невский пр. 28"
    r"\b(?:ул\.|улица|пр\.|пр-т|проспект|пер\.|переулок|наб\.|набережная|бульвар|б-р|шоссе)"
    r"[ \t]*[А-ЯЁA-Z0-9][\w.-]*(?:[ \t][А-ЯЁа-яёA-Za-z][\w.-]*){0,3},?[ \t]*(?:д\.|дом)?[ \t]*"
    r"\d{1,4}[а-яa-z]?(?:[ \t]*(?:к|корп|корпус|стр)\.?[ \t]*\d{1,3})?"
    r"(?:,?[ \t]*(?:кв\.?|квартира)[ \t]*\d{1,4})?"
    r"|\b\d{1,5}[A-Z]?[ \t]+(?:[A-Z][a-z]+[ \t]+){1,3}(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|"
    r"Lane|Ln\.?|Boulevard|Blvd\.?|Drive|Dr\.?)(?:,?[ \t]*(?:Apt\.?|Apartment|Flat|Unit|#)"
    r"[ \t]*\d{1,4}[A-Z]?)?)",
)
# A Russian flat without a street: "д. 5, кв. 12".
_HOUSE_FLAT = re.compile(
    r"\b(?:д\.|дом)[ \t]*\d{1,4}[а-я]?(?:[ \t]*(?:к|корп)\.?[ \t]*\d{1,3})?,?[ \t]*"
    r"(?:кв\.?|квартира)[ \t]*\d{1,4}\b",
    re.IGNORECASE,
)
# Signs that a detector has something to find (matched against the lowercased text
# where they are words).
_KEY_SIGN = re.compile(r":|sk-|sk_|rk_|gh[pousr]_|github_|glpat-|AKIA|AIza|xox|eyJ")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_-]{25}")
_PASSPORT_SIGN = re.compile(r"паспорт|серия|passport")
_CODE_SIGN = re.compile(r"код|code|otp|пин|pin")
_SAID_SECRET_SIGN = re.compile(r"pass|pwd|парол|пасс")
_ADDRESS_SIGN = re.compile(
    r"ул\.|улиц|пр\.|пр-т|просп|пер\.|переул|наб\.|набереж|бульв|б-р|шоссе|д\.|дом|кв|street|st\b|"
    r"avenue|ave\b|road|rd\b|lane|ln\b|boulevard|blvd|drive|dr\b"
)
_WORD = re.compile(r"[a-z]+")
SEED_WORDS = 12  # the shortest BIP-39 seed phrase
# Twelve lowercase words of BIP-39's lengths in a row: the only texts with neither a
# digit nor a sign that can hold personal data (a seed phrase).
_SEED_HINT = re.compile(r"\b(?:[a-z]{3,8}[ ,\n]+){11}[a-z]{3,8}\b")


def _may_be_seed(text: str) -> bool:
    return (
        len(text) >= 47
        and text.count(" ") + text.count("\n") >= SEED_WORDS - 1
        and _SEED_HINT.search(text) is not None
    )


def may_hold(text: str) -> bool:
    """Whether `text` can hold anything `scrub` replaces; cheap, for the many that cannot."""
    return PII_SIGNS.search(text) is not None or _may_be_seed(text)


# A link "carries a key" when a query parameter is named like one, or a path segment is
# a long random-looking token (invite links, reset links, signed URLs).
_URL_SECRET_PARAM = re.compile(
    r"[?&#](?:[\w.-]*(?:token|key|secret|sig|signature|auth|session|sid|password|pass|"
    r"pwd|code|hash|invite|ticket)[\w.-]*)=",
    re.IGNORECASE,
)
_URL_SEGMENT = re.compile(r"[/=]([A-Za-z0-9_-]{16,})(?=[/?#&]|$)")  # path parts, values
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-zА-Яа-я]{2,}(?![\w-])")
# In capitals, or typed all in lower case ("de89 3704..."); never a mix, which would
# run on into the next word ("BE68... is").
_IBAN = re.compile(
    r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b"
    r"|\b[a-z]{2}\d{2}(?:[ ]?[a-z0-9]{4}){2,7}(?:[ ]?[a-z0-9]{1,3})?\b"
)
# A card number typed over two messages of a burst, joined by a newline: groups of four.
_SPLIT_CARD = re.compile(
    r"(?<![\w+])\d{4}(?:[ -]?\d{4}){0,3}[ \t]*\n[ \t]*\d{4}(?:[ -]?\d{4}){0,3}\b"
)
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
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def inn_ok(digits: str) -> bool:
    """A Russian taxpayer number (ИНН): 10 digits for a company, 12 for a person."""

    def check(weights: tuple[int, ...]) -> int:
        return sum(w * int(d) for w, d in zip(weights, digits, strict=False)) % 11 % 10

    if len(digits) == 10:
        return check((2, 4, 10, 3, 5, 9, 4, 6, 8)) == int(digits[9])
    if len(digits) == 12:
        return check((7, 2, 4, 10, 3, 5, 9, 4, 6, 8)) == int(digits[10]) and check(
            (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
        ) == int(digits[11])
    return False


def snils_ok(digits: str) -> bool:
    """A Russian insurance number (СНИЛС): nine digits and a two-digit check."""
    if len(digits) != 11:
        return False
    total = sum(int(d) * (9 - i) for i, d in enumerate(digits[:9]))
    check = total if total < 100 else 0 if total in (100, 101) else total % 101 % 100
    return check == int(digits[9:])


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
        labelled = before.lower()
        if len(digits) == 20 and re.fullmatch(r"[\d ]+", candidate):
            kind = ACCOUNT  # a Russian bank account: 20 digits
        elif snils_ok(digits) and (
            re.fullmatch(r"\d{3}-\d{3}-\d{3}[ -]\d{2}", candidate) or "снилс" in labelled
        ):
            kind = SNILS
        elif inn_ok(digits) and ("инн" in labelled or "inn" in labelled or len(digits) == 12):
            kind = INN
        elif (
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


def _seed_phrases(text: str, stats: ScrubStats) -> str:
    """Runs of twelve or more BIP-39 words: a wallet's seed phrase is its keys."""
    words = list(_WORD.finditer(text.lower()))
    out, last, run = [], 0, []
    for match in [*words, None]:
        if match is not None and match.group() in _bip39():
            gap = text[run[-1].end() : match.start()] if run else ""
            if not run or re.fullmatch(r"[\s,.;:\d-]*", gap):
                run.append(match)
                continue
        if len(run) >= SEED_WORDS:
            out.append(text[last : run[0].start()])
            out.append(f"[{SEED}]")
            stats.counts[SEED] += 1
            last = run[-1].end()
        run = [match] if match is not None and match.group() in _bip39() else []
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


@cache
def _bip39() -> frozenset[str]:
    return frozenset(Mnemonic("english").wordlist)


def scrub(text: str, stats: ScrubStats | None = None) -> str:
    """`text` with every piece of personal data replaced by `[TYPE]`."""
    if not text:
        return text
    # A seed phrase has neither digits nor signs: only a long run of words can be one.
    words = _may_be_seed(text)
    if PII_SIGNS.search(text) is None or _MAYBE.search(text.lower()) is None:
        if not words:
            return text
        return _seed_phrases(text, stats if stats is not None else ScrubStats())
    stats = stats if stats is not None else ScrubStats()

    def labelled(kind: str) -> Callable[[re.Match[str]], str]:
        def keep_label(match: re.Match[str]) -> str:
            stats.counts[kind] += 1
            return f"{match.group('label')}[{kind}]"

        return keep_label

    # Each detector runs only where its cheap sign is: most candidates need few.
    low = text.lower()
    if "/" in text or "www." in low:
        text = _replace(_URL, URL, text, stats, _url_carries_key)
        text = _replace(_INVITE, URL, text, stats)
    if _KEY_SIGN.search(text):
        text = _replace(_KEY, SECRET, text, stats)
    if ":" in text or "=" in text:
        text = _SECRET.sub(labelled(SECRET), text)
    if _SAID_SECRET_SIGN.search(low):
        text = _SAID_SECRET.sub(_said_secret(stats), text)
    if _LONG_TOKEN.search(text):
        text = _replace(_WALLET, WALLET, text, stats, _wallet_like)
    if "@" in text:
        text = _replace(_EMAIL, EMAIL, text, stats)
    text = _replace(_IBAN, IBAN, text, stats, lambda m: iban_ok(m.group()))
    if _PASSPORT_SIGN.search(low):
        text = _PASSPORT.sub(labelled(PASSPORT), text)
    if _CODE_SIGN.search(low):
        text = _CODE.sub(_code(stats), text)
    if _ADDRESS_SIGN.search(low):
        text = _replace(_ADDRESS, ADDRESS, text, stats)
        text = _replace(_HOUSE_FLAT, ADDRESS, text, stats)
    if "\n" in text:
        text = _replace(_SPLIT_CARD, CARD, text, stats, _split_card)
    text = _digit_runs(text, stats)
    return _seed_phrases(text, stats) if words else text


def _said_secret(stats: ScrubStats) -> Callable[[re.Match[str]], str]:
    """A password said without ':', unless its digits are a year or follow "pass"."""

    def replace(match: re.Match[str]) -> str:
        value = match.group("value")
        if value.isdigit() and (
            match.group("word").lower() == "pass"
            or (len(value) == 4 and 1900 <= int(value) <= 2099)
        ):
            return match.group()
        stats.counts[SECRET] += 1
        return f"{match.group('label')}[{SECRET}]"

    return replace


def _split_card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group())
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _code(stats: ScrubStats) -> Callable[[re.Match[str]], str]:
    """A code's digits, unless they are a year ("код работает с 2019")."""

    def replace(match: re.Match[str]) -> str:
        value = match.group("value")
        if len(value) == 4 and 1900 <= int(value) <= 2099:
            return match.group()
        stats.counts[CODE] += 1
        return f"{match.group('label')}[{CODE}]"

    return replace


def _wallet_like(match: re.Match[str]) -> bool:
    """Base58 and hex both need digits and letters; a long word is no wallet."""
    value = match.group()
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value[2:])
