"""A pull parser for JSON documents too large to load at once.

Telegram exports reach gigabytes, and `json.load` holds several times the file in
memory. This parser walks the outer structure (objects and arrays the caller chooses
to enter) itself, and hands every value the caller does not enter, such as one
message, to the C decoder of the standard library (`JSONDecoder.raw_decode`) over a
sliding buffer. Memory is bounded by the largest single value, and the speed is that
of `json.load`, because the per-message work happens in C.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_scan_once = _DECODER.scan_once  # the C scanner raw_decode wraps
# A lone surrogate escape: a high one not followed by a low one, or a low one alone.
# A pair (an emoji in an ASCII-only file) decodes to one character and is fine.
_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
# How close to the end of the buffer a decode error must be to mean "read more".
_TAIL = 64


class JsonSyntaxError(ValueError):
    """The document is not valid JSON at `line`:`column`."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.reason = message
        self.line = line
        self.column = column


class JsonStream:
    """Read a JSON document from a binary file, one value or one container step at a time.

    The caller drives it: `object_keys()` enters an object and yields each key (the caller
    then consumes exactly one value), `array_items()` enters an array and yields before
    each item, `value()` decodes one whole value, `end()` checks that nothing follows.
    """

    def __init__(
        self, file: BinaryIO, chunk_size: int = 1 << 20, max_value_chars: int = 256 << 20
    ) -> None:
        self._file = file
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._chunk_size = chunk_size
        self._max_value_chars = max_value_chars
        self._buf = ""
        self._pos = 0
        self._eof = False
        self.bytes_read = 0
        # Position bookkeeping for error messages, for text already dropped from _buf.
        self._dropped_lines = 0
        self._dropped_column = 0
        self.value_start = 0  # buffer index where the last value() began
        # A \uD800-\uDFFF escape was seen: a decoded string may hold a lone surrogate,
        # which no UTF-8 text (and so no SQLite text) can. Readers repair strings from
        # then on; a file without such escapes (nearly all) costs nothing.
        self.escaped_surrogates = False
        self._tail = ""

    # -- buffer ---------------------------------------------------------------------

    def _read(self, at_least: int = 0) -> bool:
        """Append the next chunk, dropping what was consumed; False at end of file."""
        if self._eof:
            return False
        raw = self._file.read(max(self._chunk_size, at_least))
        self.bytes_read += len(raw)
        try:
            text = self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as err:
            raise self._error(f"invalid UTF-8 ({err.reason})", len(self._buf)) from None
        if not self.escaped_surrogates:
            probe = self._tail + text
            self.escaped_surrogates = "\\u" in probe and bool(_SURROGATE_ESCAPE.search(probe))
            self._tail = text[-12:]  # an escape, or a pair, cut by the chunk's end
        if self._pos:
            dropped = self._buf[: self._pos]
            newlines = dropped.count("\n")
            if newlines:
                self._dropped_lines += newlines
                self._dropped_column = len(dropped) - dropped.rfind("\n") - 1
            else:
                self._dropped_column += len(dropped)
            self._buf = self._buf[self._pos :] + text
            self.value_start -= self._pos
            self._pos = 0
        else:
            self._buf += text
        if not raw:
            self._eof = True
        return bool(raw) or bool(text)

    def _peek(self) -> str:
        """Skip whitespace; return the next character, or '' at end of file."""
        while True:
            self._pos = _WHITESPACE.match(self._buf, self._pos).end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._read():
                return ""

    def _expect(self, char: str, what: str) -> None:
        found = self._peek()
        if found != char:
            raise self._error(f"expected {what}, found {_show(found)}", self._pos)
        self._pos += 1

    # -- positions --------------------------------------------------------------------

    def location(self, index: int | None = None) -> tuple[int, int]:
        """(line, column), 1-based, of a buffer index (default: the current position)."""
        index = self._pos if index is None else index
        newlines = self._buf.count("\n", 0, index)
        if newlines:
            column = index - self._buf.rfind("\n", 0, index)
        else:
            column = self._dropped_column + index + 1
        return self._dropped_lines + newlines + 1, column

    def _error(self, message: str, index: int) -> JsonSyntaxError:
        line, column = self.location(index)
        return JsonSyntaxError(message, line, column)

    # -- reading ----------------------------------------------------------------------

    def value(self) -> Any:
        """Decode the next whole value with the C decoder."""
        if not self._peek():
            raise self._error("unexpected end of file, expected a value", self._pos)
        while True:
            try:
                obj, end = _scan(self._buf, self._pos)
            except json.JSONDecodeError as err:
                truncated = err.pos >= len(self._buf) - _TAIL or err.msg.startswith(
                    "Unterminated string"
                )
                if not truncated or self._eof:
                    raise self._error(_reword(err.msg), err.pos) from None
                self._grow(err.pos)
                continue
            if end > len(self._buf) - _TAIL and not self._eof:
                # A number near the buffer end may continue in the next chunk ("12" of
                # "123", "2.5" of "2.5e3"): decode again with more text.
                self._grow(end)
                continue
            self.value_start = self._pos
            self._pos = end
            return obj

    def _grow(self, error_index: int) -> None:
        size = len(self._buf) - self._pos
        if size > self._max_value_chars:
            raise self._error(
                f"a single value is larger than {self._max_value_chars >> 20} MiB", error_index
            )
        self._read(at_least=size)  # doubling: a large value costs O(n log n), not O(n^2)

    def object_keys(self) -> Iterator[str]:
        """Enter an object; yield each key. The caller consumes the value after each."""
        self._expect("{", "'{'")
        if self._peek() == "}":
            self._pos += 1
            return
        while True:
            if self._peek() != '"':
                raise self._error(
                    f"expected a property name, found {_show(self._peek())}", self._pos
                )
            key = self.value()
            self._expect(":", "':'")
            yield key
            char = self._peek()
            if char == ",":
                self._pos += 1
            elif char == "}":
                self._pos += 1
                return
            else:
                raise self._error(f"expected ',' or '}}', found {_show(char)}", self._pos)

    def array_items(self) -> Iterator[None]:
        """Enter an array; yield before each item. The caller consumes the item."""
        self._expect("[", "'['")
        if self._peek() == "]":
            self._pos += 1
            return
        while True:
            yield
            char = self._peek()
            if char == ",":
                self._pos += 1
            elif char == "]":
                self._pos += 1
                return
            else:
                raise self._error(f"expected ',' or ']', found {_show(char)}", self._pos)

    def array_values(self) -> Iterator[Any]:
        """Enter an array; yield each item decoded whole.

        The hot loop of an import, so the common case (a separator, then a value that
        lies wholly inside the buffer) is handled inline with one regex and one call of
        the C scanner; anything else falls back to the general path.
        """
        self._expect("[", "'['")
        if self._peek() == "]":
            self._pos += 1
            return
        yield self.value()
        separator, scan = _SEPARATOR.match, _scan_once
        while True:
            buf = self._buf
            match = separator(buf, self._pos)
            if match is not None:
                start = match.end()
                try:
                    obj, end = scan(buf, start)
                except (StopIteration, json.JSONDecodeError):
                    end = len(buf)  # let value() sort out truncation and errors
                if end < len(buf) - _TAIL:
                    self.value_start = start
                    self._pos = end
                    yield obj
                    continue
                self._pos = start
                yield self.value()
                continue
            char = self._peek()
            if char == ",":
                self._pos += 1
                yield self.value()
            elif char == "]":
                self._pos += 1
                return
            else:
                raise self._error(f"expected ',' or ']', found {_show(char)}", self._pos)

    def peek_kind(self) -> str:
        """The kind of the next value: 'object', 'array', or 'scalar' ('' at end of file)."""
        char = self._peek()
        return {"{": "object", "[": "array", "": ""}.get(char, "scalar")

    def end(self) -> None:
        """Check that only whitespace follows the document."""
        char = self._peek()
        if char:
            raise self._error(f"unexpected {_show(char)} after the end of the document", self._pos)


def _scan(text: str, index: int) -> tuple[Any, int]:
    """The value at `index` and the index after it (raw_decode without its wrapper)."""
    try:
        return _scan_once(text, index)
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", text, stop.value) from None


def _show(char: str) -> str:
    return "end of file" if not char else repr(char)


def _reword(message: str) -> str:
    # The decoder's "Expecting value" reads oddly in a one-line error.
    return message.replace("Expecting", "expected")
