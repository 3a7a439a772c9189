"""Tool results as every database can store them.

A tool's result goes to the model, into the history (the session snapshot) and into the run's
events, all of them JSON columns. PostgreSQL refuses `\\u0000` and lone surrogates in JSON text
where SQLite accepts them, so results from outside (MCP servers, caller-hosted tools) pass
through `storable` first: it replaces those characters with U+FFFD in every string of a JSON-like
value, and leaves everything else (including non-JSON values such as binary content) untouched.
"""

from __future__ import annotations

from typing import Any

_REPLACEMENT = "\ufffd"


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
    """A copy of a JSON-like value whose strings (keys included) are `storable_text`."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {
            storable_text(key) if isinstance(key, str) else key: storable(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value
