"""Request bodies shared by the run tests."""

from __future__ import annotations

import copy
from typing import Any


def layer(
    name: str, type_: str, config: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "type": type_}
    if config is not None:
        spec["config"] = config
    spec.update(extra)
    return spec


def chat(user: str = "hello", *, llm: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """prompt + history + llm.test: the smallest resumable conversation."""
    body: dict[str, Any] = {
        "composition": {
            "layers": [
                layer("prompt", "plain.prompt", {"prefix": "You are terse.", "user": user}),
                layer("history", "pydantic_ai.history"),
                layer("llm", "llm.test", llm or {}),
            ]
        }
    }
    body.update(extra)
    return body


def resumed(body: dict[str, Any], snapshot: dict[str, Any], **extra: Any) -> dict[str, Any]:
    again = copy.deepcopy(body)
    again["session_snapshot"] = snapshot
    again.update(extra)
    return again
