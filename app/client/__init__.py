"""Python clients of the Strata API: `StrataClient` (blocking) and `AsyncStrataClient`.

Both speak to a running server over HTTP (`httpx2`), send `Authorization: Bearer <api_key>` on
every request, and return the server's own response schemas (`RunRead`, `RunPage`,
`RunEventRead`, `RunEventPage` from `app.runs.schemas`; `AgentRead`, `SaveResult`,
`BindingRead`… from `app.agents.schemas`; `SessionRead`, `RetireResponse` from
`app.sessions.schemas`; `KeyCreated`… from `app.key_schemas`), so a field the server adds is
typed here at once. Request bodies are the server's request models (`AgentCreate`,
`VersionSave`, `BindingPut`, `NodeRunRequest`…) or plain mappings, sent as they are for the
server to validate; a model sends only the fields that were set. The two classes have the same
methods with the same contracts (the async one's methods are coroutines, its `iter_*` methods
async generators). Runs and events:

- `create_run(request, *, idempotency_key=None) -> RunRead`: queue a run. `request` is a
  `CreateRunRequest` or a plain mapping (sent as is; the server validates it). The same key with
  the same request returns the existing run; with a different request, 409
  `idempotency_key_reused`. Never retried by the client.
- `get_run(run_id)`, `cancel_run(run_id, reason=None) -> RunRead`: cancelling is idempotent; a
  running run comes back `cancelling`.
- `list_runs(status=None, cursor=None, limit=50, *, workflow_run_id=, node_id=, session_id=,
  purpose=, created_after=, created_before=) -> RunPage`, and `iter_runs(status=None, *, …)`
  with the same filters, which follows `next_cursor` until the last page. `status` is one status
  or a list of them; the filters that are set must all hold (times timezone-aware).
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

What a workflow engine uses besides runs (`docs/workflow-engines.md` is the guide). Ids are
`UUID`s or strings; every `list_*` answers one page (`next_cursor` says where the next starts)
and its `iter_*` twin follows the cursors to the end:

- Agents: `create_agent(request)`, `get_agent(id)`, `list_agents(scope=, status=, q=, cursor=,
  limit=)` / `iter_agents(…)`, `update_agent(id, request)` (PATCH: only the fields present
  change), `archive_agent(id)` (idempotent), `save_agent_as(id, request)`,
  `save_agent_to_roster(id, name=None)`.
- Versions and revisions: `save_version(id, request) -> SaveResult` (the agent, the new active
  version, the revision), `list_versions(id, before=, limit=)` / `iter_versions(id)`,
  `get_version(id, version) -> VersionRead` (with its config), `list_revisions(id, before=,
  limit=)` / `iter_revisions(id)`.
- Bindings, addressed by `(workflow_id, workflow_version, node_id)`: `put_binding(…, request)`
  (create or replace), `get_binding(…)`, `delete_binding(…) -> None`,
  `list_bindings(workflow_id, workflow_version)`, `copy_bindings(workflow_id,
  workflow_version, request)` (all or nothing; `request.target_version`).
- Node runs: `create_node_run(workflow_run_id, node_id, request, *, idempotency_key=None) ->
  RunRead`, a normal run on the node's runtime session (follow it with `wait_run`,
  `iter_events`, `cancel_run`); a resume is a node run with `deferred_tool_results`.
- Sessions: `list_sessions(workflow_run_id=, status=, cursor=, limit=)` / `iter_sessions(…)`,
  `get_session(id)`, `retire_session(id, wait_seconds=30)` and `retire_workflow_run(
  workflow_run_id, wait_seconds=30, cursor=None, limit=100)` (one page of sessions, each
  reported: `cleaned`, `already_cleaned`, `still_running`, `cleanup_failed`), and
  `iter_retire_workflow_run(workflow_run_id, wait_seconds=30, page_size=100)`, which retires
  page after page and yields every `RetireReport`. A retire's read timeout is the client's
  `timeout` plus `wait_seconds` plus 30 s for the cleanup runs; give a large page more.
- API keys (an `admin` key): `create_key(role, label=None) -> KeyCreated` (the plaintext `key`
  is in this answer only), `list_keys()`, `revoke_key(id)`.

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
  `details` (`{"error": {"code", "message", "details"}}`): `agent_not_found` (404),
  `session_busy` (409), `deferred_results_mismatch` (422)… exactly as the server sends them.
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
