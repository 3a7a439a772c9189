"""Request bodies and helpers shared by the tool layers' tests."""

from __future__ import annotations

import json
import socket
from typing import Any

from tests.runs.bodies import layer


def closed_port() -> int:
    """A local TCP port nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def tool_run(
    *tool_layers: dict[str, Any],
    user: str = "What should I know?",
    llm: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """prompt + execution_context + history + the given tool layers + llm (llm.test by default)."""
    layers = [
        layer("prompt", "plain.prompt", {"prefix": "You use tools.", "user": user}),
        layer("execution_context", "execution_context", context or {"workflow_run_id": "wr-1"}),
        layer("history", "pydantic_ai.history"),
        *tool_layers,
        llm or layer("llm", "llm.test", {}),
    ]
    body: dict[str, Any] = {"composition": {"layers": layers}}
    if snapshot is not None:
        body["session_snapshot"] = snapshot
    return body


def llm_test_layer(**config: Any) -> dict[str, Any]:
    return layer("llm", "llm.test", config)


def events_of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event["type"] == kind]


def history_tool_returns(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool-return parts the model was sent, from the run's history snapshot."""
    snapshot = run["session_snapshot"]
    [history] = [entry for entry in snapshot["layers"] if entry["name"] == "history"]
    return [
        part
        for message in history["runtime_state"]["messages"]
        for part in message.get("parts", [])
        if part.get("part_kind") == "tool-return"
    ]


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
