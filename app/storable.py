"""Text as every database can store it.

PostgreSQL refuses NUL (`U+0000`) in `text` and `jsonb` values and unpaired UTF-16 surrogates
(`U+D800` to `U+DFFF`) in `jsonb`; orjson, which encodes every JSON column, refuses unpaired
surrogates on any database; SQLite would store both. Requests never bring them in (`app.api.edge`
refuses them with 422 `invalid_characters`), but what a run produces comes from outside: a model
provider's answer or error message, an MCP server's or a caller-hosted tool's result. Stored as
they are, they would fail the run's terminal write over and over, and the run would never end.
So they are replaced with U+FFFD, the same way on every database:

- `storable_text` and `storable`: a string, or every string of a JSON-like value (keys
  included). `storable` also writes an integer beyond 64 bits (valid JSON, which a tool may
  return, but orjson refuses it) as its decimal string, every digit kept; everything else
  (other numbers, non-JSON values such as binary content) is left as it is.
- `storable_json`: the same for a value about to be stored in a JSON column, after a check that
  costs one orjson encoding (most values hold neither character and are returned as they are);
  `storable_dumps` returns that encoding (the JSON columns' encoder, `app.db`).
"""

from __future__ import annotations

from typing import Any

import orjson

_REPLACEMENT = "\ufffd"
_INT_RANGE = range(-(2**63), 2**64)
"""The integers orjson writes: signed and unsigned 64-bit."""


def storable_text(text: str) -> str:
    """`text` without NUL characters and lone surrogates (each replaced with U+FFFD)."""
    if "\x00" in text:
        text = text.replace("\x00", _REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(_REPLACEMENT if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)
    return text


def storable(value: Any) -> Any:
    """A copy of a JSON-like value whose strings (keys included) are `storable_text`, and whose
    integers beyond 64 bits are decimal strings."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, int) and value not in _INT_RANGE:
        return str(value)
    if isinstance(value, dict):
        return {
            storable_text(key) if isinstance(key, str) else key: storable(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def storable_json(value: Any) -> Any:
    """`value`, or when it holds NUL or an unpaired surrogate in any string (or an integer
    beyond 64 bits), `storable(value)`."""
    return value if _encoded_as_is(value) is not None else storable(value)


def storable_dumps(value: Any) -> bytes:
    """The JSON encoding of `storable_json(value)` (encoded twice only when it needs the copy)."""
    encoded = _encoded_as_is(value)
    return encoded if encoded is not None else orjson.dumps(storable(value))


def _encoded_as_is(value: Any) -> bytes | None:
    """`value`'s orjson encoding, or None when it holds what `storable` replaces."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None
    # orjson writes NUL as the escape `\u0000`; a text that spells out that escape has its
    # backslash escaped, so it may match too: the copy then equals the value.
    return None if b"\\u0000" in encoded else encoded


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and dicts nest in `value` more than `limit` levels (iteratively: a value
    nested deeper than Python's recursion limit is measured too)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
