"""The seed system's run protocol, served over Strata's runs (`/compat/agent-backend`).

The workflow engine that inspired Strata drives its agent backend with a small client: create a
run, cancel it, page or stream its events with resume, poll its status. This package translates
that protocol to and from Strata's runs, so such an engine can point at Strata unchanged:

- `schemas`: the protocol's request and response models (every one forbids unknown fields, like
  the client's);
- `translate`: the pure mapping (requests to `CreateRunRequest`, statuses, cursors, events,
  usage), testable without HTTP or a database;
- `service`: the use cases over `app.runs.service` (same tenancy, validation, queue and rows as
  `/v1`; no SQL of its own);
- `errors`: the protocol's error body, `{"detail": …}`.

The HTTP routes live in `app.api.compat` (FastAPI stays in `app.api`). Imports point one way:
`app.api → app.compat → app.runs`.
"""

from __future__ import annotations

PREFIX = "/compat/agent-backend"
"""Where the protocol is served; its routes are relative to it."""


def under_prefix(path: str) -> bool:
    """True for a request path under `PREFIX` (its errors use the protocol's shape)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


__all__ = ["PREFIX", "under_prefix"]
