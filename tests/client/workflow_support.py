"""Helpers for the SDK's workflow-engine tests: one scenario body for both clients.

`Either` wraps a `StrataClient` or an `AsyncStrataClient` so a test body written once with
`await client.method(...)` drives either: a blocking method's result is returned as is, a
coroutine is awaited, and an `iter_*` generator (sync or async) is collected into a list. The
blocking client blocks the test's event loop while it waits, which is harmless here: the server
runs in its own thread with its own loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from app.client import AsyncStrataClient, StrataAPIError, StrataClient


class Either:
    def __init__(self, client: StrataClient | AsyncStrataClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            if inspect.isasyncgen(result):
                return [item async for item in result]
            if inspect.isgenerator(result):
                return list(result)
            return result

        return call


async def api_error(awaitable: Awaitable[Any]) -> StrataAPIError:
    """The `StrataAPIError` the call raises (the test fails when it returns)."""
    try:
        result = await awaitable
    except StrataAPIError as error:
        return error
    raise AssertionError(f"expected a StrataAPIError, got {result!r}")


def soul(reply: str | None = None, **fields: Any) -> dict[str, Any]:
    """An `AgentSoulConfig` on the test model provider; `reply` is what the model answers."""
    settings = {"reply": reply} if reply is not None else {}
    return {
        "prompt": {"system_prompt": "You are careful."},
        "model": {"provider": "test", "model": "test", "settings": settings},
        **fields,
    }


def roster_binding(agent_id: Any, snapshot_id: Any = None, **job: Any) -> dict[str, Any]:
    return {
        "binding_type": "roster_agent",
        "agent_id": str(agent_id),
        "snapshot_id": str(snapshot_id) if snapshot_id is not None else None,
        "app_id": "app-1",
        "node_job_config": {"workflow_prompt": "Do the step.", **job},
    }


def node_run(execution: str = "ex-1", **fields: Any) -> dict[str, Any]:
    return {
        "workflow_id": "wf-1",
        "workflow_version": "v1",
        "node_execution_id": execution,
        **fields,
    }
