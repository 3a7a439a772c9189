"""Answers and rows without what differs between two identical requests (ids, times)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
_INSTANT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_DURATION = re.compile(r"\bP(\d+D)?T(\d+H)?(\d+M)?\d+(\.\d+)?S\b")
"""An ISO 8601 duration in seconds (how long a model took: `PT0.0042S`)."""


def without_ids_and_times(value: Any) -> Any:
    """`value` with UUIDs and instants (objects, or inside strings) and ISO 8601 durations
    (inside strings) replaced by placeholders and `request_id` keys dropped, so two answers or
    rows of identical requests compare equal."""
    if isinstance(value, dict):
        return {
            key: without_ids_and_times(item) for key, item in value.items() if key != "request_id"
        }
    if isinstance(value, list):
        return [without_ids_and_times(item) for item in value]
    if isinstance(value, uuid.UUID | datetime):
        return f"<{type(value).__name__}>"
    if isinstance(value, str):
        value = _DURATION.sub("<duration>", value)
        return _INSTANT.sub("<instant>", _UUID.sub("<uuid>", value))
    return value
