"""Python clients of the Strata runs API: `StrataClient` (blocking) and `AsyncStrataClient`.

Both speak to a running server over HTTP (`httpx2`), send `Authorization: Bearer <api_key>` on
every request, and return the server's own response schemas (`RunRead`, `RunPage`,
`RunEventRead`, `RunEventPage` from `app.runs.schemas`), so a field the server adds is typed here
at once. The two classes have the same methods with the same contracts:

- `create_run(request, *, idempotency_key=None) -> RunRead`: queue a run. `request` is a
  `CreateRunRequest` or a plain mapping (sent as is; the server validates it). The same key with
  the same request returns the existing run; with a different request, 409
  `idempotency_key_reused`. Never retried by the client.
- `get_run(run_id)`, `cancel_run(run_id, reason=None) -> RunRead`: cancelling is idempotent; a
  running run comes back `cancelling`.
- `list_runs(status=None, cursor=None, limit=50) -> RunPage`, and `iter_runs(status=None)`, which
  follows `next_cursor` until the last page. `status` is one status or a list of them.
- `wait_run(run_id, timeout_seconds=30.0) -> RunRead`: the terminal run. Uses the server's
  long-poll (`/wait`) and asks again while the overall `timeout_seconds` is not used up, since
  the server caps one wait (`STRATA_WAIT_MAX_SECONDS`). When the deadline passes first it raises
  `StrataTimeoutError`, whose `run` is the last state seen; it never returns a live run.
- `list_events(run_id, after=0, limit=100) -> RunEventPage`: one page of the event log.
- `iter_events(run_id, after=0, *, max_reconnects=3, reconnect_delay_seconds=0.5)`: the events
  with `seq > after` over server-sent events, live, ending with the run's one terminal event
  (`run_succeeded`, `run_paused`, `run_failed`, `run_cancelled`), after which it stops. After a
  transport error, a 5xx, or a stream that ends before the terminal event it waits
  `reconnect_delay_seconds` and reconnects with `Last-Event-ID` set to the last seq it
  delivered: no event is delivered twice or skipped (seqs are checked to grow by one).
  `max_reconnects` counts reconnects in a row that delivered nothing; past it,
  `StrataStreamError`. A 4xx (401, 404 …) is raised at once. Keep-alive comments are skipped.
  The per-request `timeout` is also the longest silence tolerated on a stream, so keep it above
  the server's `STRATA_SSE_KEEPALIVE_SECONDS`.

Workflow runs (`WorkflowRunCloseReport`, `WorkflowRunRead`, `RetireReport`: the server's own
schemas, see `app.client._workflow_runs`):

- `close_workflow_run(workflow_run_id, *, wait_seconds=30.0, cancel_in_flight=False,
  cursor=None, limit=None) -> WorkflowRunCloseReport`: seal the workflow run (its new runs and
  node runs get 409 `workflow_run_closed`), cancel what is queued or running on request, retire
  a page of its sessions. Idempotent: call again (with `next_cursor` for more sessions) until
  `active_sessions` is 0.
- `get_workflow_run(workflow_run_id, *, cursor=None, limit=None) -> WorkflowRunRead`: status,
  a page of sessions, runs in flight, fixed agent versions; 404 `workflow_run_not_found`.

Errors, all `StrataError`:

- `StrataAPIError`: an error status, with `status_code` and the body's `code`, `message` and
  `details` (`{"error": {"code", "message", "details"}}`).
- `StrataTransportError`: no answer (connection failed or lost, HTTP timeout) outside a stream.
- `StrataTimeoutError`: `wait_run`'s deadline passed.
- `StrataStreamError`: an event stream gave up, or broke the protocol; `last_seq` says where to
  resume.

`SSEDecoder` (the clients' incremental `text/event-stream` parser) and `TERMINAL_EVENT_TYPES` are
public for callers that read a stream themselves.

The clients are context managers (`with` / `async with`) that close the `httpx2` client they
created; a client passed in as `http_client` stays open, since its owner closes it.
"""

from app.client._async import AsyncStrataClient
from app.client._common import TERMINAL_EVENT_TYPES
from app.client._errors import (
    StrataAPIError,
    StrataError,
    StrataStreamError,
    StrataTimeoutError,
    StrataTransportError,
)
from app.client._sse import SSEDecoder, SSEFrame
from app.client._sync import StrataClient
from app.client._workflow_runs import RetireReport, WorkflowRunCloseReport, WorkflowRunRead

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "AsyncStrataClient",
    "RetireReport",
    "SSEDecoder",
    "SSEFrame",
    "StrataAPIError",
    "StrataClient",
    "StrataError",
    "StrataStreamError",
    "StrataTimeoutError",
    "StrataTransportError",
    "WorkflowRunCloseReport",
    "WorkflowRunRead",
]
