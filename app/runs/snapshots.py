"""Reading stored session snapshots (`{schema_version, layers: [{name, lifecycle_state,
runtime_state}]}`) without building layers: what a runtime session resumes, what a paused run
waits for, what a cleanup must release.

These work on the JSON as stored, so the API can answer before anything runs.
"""

from __future__ import annotations

from typing import Any

HISTORY_LAYER = "history"
_RELEASED = {"closed", "new"}


def reopen_closed(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """The snapshot a runtime session's next run starts from: a layer that a run closed (its
    exit intent was DELETE, its resources released) starts fresh (`new`, empty state) instead of
    making the run invalid."""
    if snapshot is None:
        return None
    layers = snapshot.get("layers") or []
    if not any(entry.get("lifecycle_state") == "closed" for entry in layers):
        return snapshot
    return {
        **snapshot,
        "layers": [
            {"name": entry.get("name"), "lifecycle_state": "new", "runtime_state": {}}
            if entry.get("lifecycle_state") == "closed"
            else entry
            for entry in layers
        ],
    }


def holds_resources(snapshot: dict[str, Any] | None) -> bool:
    """True when some layer of the snapshot is suspended (its delete hook has not run yet)."""
    if snapshot is None:
        return False
    return any(
        entry.get("lifecycle_state") not in _RELEASED for entry in snapshot.get("layers") or []
    )


def pending_tool_calls(snapshot: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The tool calls a paused conversation waits for: those of the history's last model
    response that no later request answered (`tool_call_id`, `tool_name`). Empty when the
    snapshot has no history layer or the conversation is not paused."""
    if snapshot is None:
        return []
    entry = next(
        (item for item in snapshot.get("layers") or [] if item.get("name") == HISTORY_LAYER),
        None,
    )
    if entry is None or entry.get("lifecycle_state") != "suspended":
        return []
    messages = (entry.get("runtime_state") or {}).get("messages") or []
    last_response = next(
        (
            index
            for index in range(len(messages) - 1, -1, -1)
            if isinstance(messages[index], dict) and messages[index].get("kind") == "response"
        ),
        None,
    )
    if last_response is None:
        return []
    calls = [
        {"tool_call_id": part.get("tool_call_id"), "tool_name": part.get("tool_name")}
        for part in messages[last_response].get("parts") or []
        if isinstance(part, dict) and part.get("part_kind") == "tool-call"
    ]
    answered = {
        part.get("tool_call_id")
        for message in messages[last_response + 1 :]
        if isinstance(message, dict)
        for part in message.get("parts") or []
        if isinstance(part, dict) and part.get("part_kind") in ("tool-return", "retry-prompt")
    }
    return [call for call in calls if call["tool_call_id"] not in answered]
