"""What the clients' workflow-run methods share: URLs, bodies, timeouts and result types.

The results are the server's own response schemas (`app.sessions.schemas`), like `RunRead` for
runs, so a field the server adds is typed here at once:

- `WorkflowRunCloseReport`: what `close_workflow_run` did (status, `closed_at`, the runs it
  cancelled, one `RetireReport` per session of the page, `active_sessions`, `next_cursor`);
- `WorkflowRunRead`: `get_workflow_run`'s workflow run (status, a page of sessions, runs in
  flight on them, fixed agent versions, `next_cursor`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx2

from app.client._common import ClientConfig
from app.sessions.schemas import (
    RetireReport,
    WorkflowRunCloseReport,
    WorkflowRunRead,
)

__all__ = ["RetireReport", "WorkflowRunCloseReport", "WorkflowRunRead"]

CLEANUP_GRACE_SECONDS = 30.0
"""A close may outlast its `wait_seconds` by this much: a cleanup run it started gets at least
30 s on the server (`app.sessions.service`), so the read timeout allows for it."""


def workflow_run_url(config: ClientConfig, workflow_run_id: str, *rest: str) -> str:
    path = "/".join(quote(str(segment), safe="") for segment in (workflow_run_id, *rest))
    return f"{config.base_url}/v1/workflow-runs/{path}"


def close_body(
    *, wait_seconds: float, cancel_in_flight: bool, cursor: str | None, limit: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"wait_seconds": wait_seconds, "cancel_in_flight": cancel_in_flight}
    if cursor is not None:
        body["cursor"] = cursor
    if limit is not None:
        body["limit"] = limit
    return body


def close_timeout(config: ClientConfig, wait_seconds: float) -> httpx2.Timeout:
    return config.wait_timeout(wait_seconds + CLEANUP_GRACE_SECONDS)


def page_params(cursor: str | None, limit: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if cursor is not None:
        params["cursor"] = cursor
    if limit is not None:
        params["limit"] = limit
    return params
