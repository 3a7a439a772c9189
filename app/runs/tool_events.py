"""The data of a run's `tool_call` and `tool_result` events, for every kind of tool.

- `tool_call`: `{tool_call_id, tool_name, args}` — the arguments as the model sent them.
- `tool_result`: `{tool_call_id, tool_name, outcome, content, truncated}` — `outcome` is
  pydantic-ai's (`success`; `failed` for a tool error reported to the model; `retried` when the
  model was asked to try again; `denied`/`interrupted`), `content` the result as text (a string
  result as it is, anything else as compact JSON). A result longer than
  `STRATA_EVENT_TOOL_RESULT_MAX_CHARS` is cut to that many characters in the event, with
  `truncated: true` and `content_chars` (the full length); the model always receives the whole
  result.

Event data is stored in a JSON column, so texts are made storable on every database
(`app.storable.storable_text`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_ai.messages import ToolCallPart, ToolReturnPart
from pydantic_core import to_jsonable_python

from app.storable import storable, storable_text


def tool_call_data(part: ToolCallPart) -> dict[str, Any]:
    """The `tool_call` event data of one call."""
    return {
        "tool_call_id": part.tool_call_id,
        "tool_name": part.tool_name,
        "args": storable(to_jsonable_python(part.args_as_dict(), bytes_mode="base64")),
    }


def tool_result_data(part: ToolReturnPart, max_chars: int) -> dict[str, Any]:
    """The `tool_result` event data of one result, cut to `max_chars` characters of content."""
    content = part.content
    if isinstance(content, str):
        text = content
    else:
        text = json.dumps(
            to_jsonable_python(content, bytes_mode="base64"),
            ensure_ascii=False,
            separators=(",", ":"),
        )
    data: dict[str, Any] = {
        "tool_call_id": part.tool_call_id,
        "tool_name": part.tool_name,
        "outcome": part.outcome,
        "content": storable_text(text[:max_chars]),
        "truncated": len(text) > max_chars,
    }
    if data["truncated"]:
        data["content_chars"] = len(text)
    return data
