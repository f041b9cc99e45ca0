"""The streaming JSON reader agrees with json.loads, whatever the chunk boundaries."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.jsonstream import JsonStream, JsonSyntaxError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def read_all(stream: JsonStream) -> Any:
    """Rebuild the document by walking every container with keys()/items()."""
    kind = stream.peek_kind()
    if kind == "object":
        return {key: read_all(stream) for key in stream.object_keys()}
    if kind == "array":
        return [read_all(stream) for _ in stream.array_items()]
    return stream.value()


def stream_of(text: str, chunk_size: int) -> JsonStream:
    return JsonStream(io.BytesIO(text.encode()), chunk_size=chunk_size)


@settings(max_examples=150, deadline=None)
@given(json_values, st.integers(1, 64), st.sampled_from([None, 1, 2]))
def test_walking_equals_json_loads(value: Any, chunk_size: int, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    stream = stream_of(text, chunk_size)
    assert read_all(stream) == value
    stream.end()


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, max_size=10), st.integers(1, 40))
def test_values_of_an_array(items: list[Any], chunk_size: int) -> None:
    text = json.dumps({"messages": items}, indent=1, ensure_ascii=False)
    stream = stream_of(text, chunk_size)
    keys = stream.object_keys()
    assert next(keys) == "messages"
    assert list(stream.array_values()) == items
    assert list(keys) == []
    stream.end()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8])
def test_numbers_split_across_chunks_are_whole(chunk_size: int) -> None:
    stream = stream_of("[123456789, 2.5e10, true, null, -7]", chunk_size)
    assert list(stream.array_values()) == [123456789, 2.5e10, True, None, -7]


def test_byte_order_mark_and_multibyte_text() -> None:
    data = "\ufeff" + json.dumps({"t": "привет 😂"}, ensure_ascii=False)
    stream = JsonStream(io.BytesIO(data.encode("utf-8")), chunk_size=3)
    assert read_all(stream) == {"t": "привет 😂"}


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{\n "a": [1, 2,\n', 3, "expected"),  # truncated
        ('{\n "a": [1, 2 3]\n}', 2, "expected ',' or ']'"),
        ('{\n "a": tru\n}', 2, "expected value"),
        ('{"a": 1} trailing', 1, "after the end"),
        ('{\n\n "a": "unterminated', 3, "Unterminated string"),
    ],
)
def test_errors_name_the_line(text: str, line: int, reason: str) -> None:
    stream = stream_of(text, 4)
    with pytest.raises(JsonSyntaxError) as caught:
        read_all(stream)
        stream.end()
    assert caught.value.line == line
    assert reason in str(caught.value)


def test_invalid_utf8_is_a_syntax_error() -> None:
    stream = JsonStream(io.BytesIO(b'{"a": "\xff\xfe"}'), chunk_size=4)
    with pytest.raises(JsonSyntaxError, match="UTF-8"):
        read_all(stream)


def test_a_single_value_larger_than_the_limit_is_refused() -> None:
    text = json.dumps(["x" * 5000])
    stream = JsonStream(io.BytesIO(text.encode()), chunk_size=16, max_value_chars=1000)
    with pytest.raises(JsonSyntaxError, match="larger than"):
        list(stream.array_values())
