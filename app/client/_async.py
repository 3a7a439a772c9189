"""`AsyncStrataClient`: the asyncio client, over `httpx2.AsyncClient`. See `app.client`.

Same methods, names and contracts as `StrataClient`; every method is a coroutine except the
`iter_*` methods, which are async generators (close one you leave early, e.g. with
`contextlib.aclosing`, so its connection is released at once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx2

from app.agents.schemas import (
    AgentCreate,
    AgentPage,
    AgentRead,
    AgentSaveAs,
    AgentUpdate,
    BindingList,
    BindingPut,
    BindingRead,
    BindingsCopy,
    NodeRunRequest,
    RevisionPage,
    RevisionRead,
    SaveResult,
    VersionPage,
    VersionRead,
    VersionSave,
    VersionSummary,
)
from app.client import _calls
from app.client._calls import AgentStatusFilter
from app.client._common import (
    Call,
    ClientConfig,
    EventCursor,
    Id,
    Result,
    RetryableStatus,
    RunId,
    StatusFilter,
    api_error,
    check_stream_response,
    parse_response,
    run_list_params,
    run_request_body,
)
from app.client._errors import StrataTimeoutError, StrataTransportError
from app.client._sse import SSEDecoder
from app.client._workflow_runs import (
    WorkflowRunCloseReport,
    WorkflowRunRead,
    close_body,
    close_timeout,
    page_params,
    workflow_run_url,
)
from app.key_schemas import KeyCreated, KeyList, KeyRead
from app.models import AgentScope, ApiKeyRole, RuntimeSessionStatus
from app.runs.schemas import CreateRunRequest, RunEventPage, RunEventRead, RunPage, RunRead
from app.sessions.schemas import RetireReport, RetireResponse, SessionPage, SessionRead


class AsyncStrataClient:
    """An asyncio client of one Strata server, authenticated with one API key.

    `transport` plugs an `httpx2` transport into the client this object creates. With
    `http_client` the caller's client is used instead (and `transport` is ignored); it is not
    closed by `aclose()`, because the caller owns it. `timeout` (seconds) applies to every
    request either way; long-polls get the time the server may hold them on top.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self._config = ClientConfig(base_url, api_key, timeout)
        self._owns_http = http_client is None
        self._http = http_client or httpx2.AsyncClient(transport=transport, timeout=timeout)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncStrataClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- runs -----------------------------------------------------------------------------

    async def create_run(
        self,
        request: CreateRunRequest | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> RunRead:
        """Queue a run (202), or get the run an earlier identical request with the same
        `idempotency_key` created (200). Never retried: a lost answer is a
        `StrataTransportError`, and only a keyed request is safe to send again."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        response = await self._send(
            "POST",
            self._config.url(),
            json=run_request_body(request),
            headers=self._config.headers(headers),
        )
        return parse_response(response, RunRead)

    async def get_run(self, run_id: RunId) -> RunRead:
        return parse_response(await self._send("GET", self._config.url(run_id)), RunRead)

    async def list_runs(
        self,
        status: StatusFilter = None,
        cursor: str | None = None,
        limit: int = 50,
        *,
        workflow_run_id: str | None = None,
        node_id: str | None = None,
        session_id: RunId | None = None,
        purpose: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> RunPage:
        """One page of the tenant's runs, newest first; `status` is one status or several.

        The filters that are set must all hold: `workflow_run_id`, `node_id` and `session_id`
        (the run's runtime session), `purpose` (`agent` or `cleanup`), `created_after`
        (inclusive) and `created_before` (exclusive), timezone-aware."""
        params = run_list_params(
            status,
            cursor,
            limit,
            {
                "workflow_run_id": workflow_run_id,
                "node_id": node_id,
                "session_id": session_id,
                "purpose": purpose,
                "created_after": created_after,
                "created_before": created_before,
            },
        )
        response = await self._send("GET", self._config.url(), params=params)
        return parse_response(response, RunPage)

    async def iter_runs(
        self,
        status: StatusFilter = None,
        *,
        page_size: int = 50,
        workflow_run_id: str | None = None,
        node_id: str | None = None,
        session_id: RunId | None = None,
        purpose: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> AsyncGenerator[RunRead, None]:
        """Every run of the tenant that passes the filters (as `list_runs`), newest first,
        fetching pages as the iteration goes."""
        cursor: str | None = None
        while True:
            page = await self.list_runs(
                status,
                cursor,
                page_size,
                workflow_run_id=workflow_run_id,
                node_id=node_id,
                session_id=session_id,
                purpose=purpose,
                created_after=created_after,
                created_before=created_before,
            )
            for run in page.items:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def wait_run(self, run_id: RunId, timeout_seconds: float = 30.0) -> RunRead:
        """The run once it is terminal, waiting at most `timeout_seconds` in all.

        Long-polls `/wait`; when the server's cap on one wait is shorter than what is left, it
        asks again. Raises `StrataTimeoutError` (with the last state seen) when the deadline
        passes first. `timeout_seconds=0` looks once.
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            response = await self._send(
                "GET",
                self._config.url(run_id, "wait"),
                params={"timeout_seconds": remaining},
                timeout=self._config.wait_timeout(remaining),
            )
            run = parse_response(response, RunRead)
            if run.status.is_terminal:
                return run
            if time.monotonic() >= deadline:
                raise StrataTimeoutError(
                    f"run {run.id} is still {run.status.value} after {timeout_seconds}s", run
                )

    async def cancel_run(self, run_id: RunId, reason: str | None = None) -> RunRead:
        """Ask for the run to stop. Returns it `cancelled` (it was queued) or `cancelling`
        (its worker is stopping it; `wait_run` for the end). Idempotent. 409
        `run_already_finished` when it already succeeded, paused or failed."""
        body = {"reason": reason} if reason is not None else None
        response = await self._send("POST", self._config.url(run_id, "cancel"), json=body)
        return parse_response(response, RunRead)

    # --- events ---------------------------------------------------------------------------

    async def list_events(self, run_id: RunId, after: int = 0, limit: int = 100) -> RunEventPage:
        """Events with `seq > after`, oldest first; pass `next_cursor` as the next `after`."""
        params = {"after": after, "limit": limit}
        response = await self._send("GET", self._config.url(run_id, "events"), params=params)
        return parse_response(response, RunEventPage)

    async def iter_events(
        self,
        run_id: RunId,
        after: int = 0,
        *,
        max_reconnects: int = 3,
        reconnect_delay_seconds: float = 0.5,
    ) -> AsyncGenerator[RunEventRead, None]:
        """The run's events with `seq > after`, live, ending with its terminal event.

        Reads the SSE stream and reconnects with `Last-Event-ID` after a transport error, a 5xx
        or a stream that ended before the terminal event, so every event is delivered exactly
        once and in order. `max_reconnects` bounds reconnects in a row that deliver nothing;
        past it, `StrataStreamError`. A 4xx is raised at once as `StrataAPIError`.
        """
        cursor = EventCursor(run_id, after)
        url = self._config.url(run_id, "events", "stream")
        failures = 0
        while True:
            seen = cursor.last_seq
            try:
                # aclosing: leaving this generator early closes the response at once.
                async with aclosing(self._stream_once(url, cursor)) as events:
                    async for event in events:
                        yield event
                if cursor.finished:
                    return
                failure: Exception = cursor.error("the stream ended before the terminal event")
            except httpx2.TransportError as exc:
                failure = exc
            except RetryableStatus as exc:
                failure = exc.error
            failures = 0 if cursor.last_seq > seen else failures + 1
            if failures > max_reconnects:
                raise cursor.gave_up(failures) from failure
            await asyncio.sleep(reconnect_delay_seconds)

    async def _stream_once(
        self, url: str, cursor: EventCursor
    ) -> AsyncGenerator[RunEventRead, None]:
        headers = self._config.headers(cursor.stream_headers())
        async with self._http.stream(
            "GET", url, headers=headers, timeout=self._config.timeout
        ) as response:
            if response.is_error:
                await response.aread()
                error = api_error(response)
                if response.status_code >= 500:
                    raise RetryableStatus(error)
                raise error
            check_stream_response(response, cursor)
            decoder = SSEDecoder()
            async for chunk in response.aiter_bytes():
                for frame in decoder.feed(chunk):
                    event = cursor.accept(frame)
                    if event is not None:
                        yield event
                        if cursor.finished:
                            return
            for frame in decoder.close():
                event = cursor.accept(frame)
                if event is not None:
                    yield event
                    if cursor.finished:
                        return

    # --- agents, versions, revisions ------------------------------------------------------

    async def create_agent(self, request: AgentCreate | Mapping[str, Any]) -> AgentRead:
        """Create an agent with config version 1 (201). 409 `agent_name_taken` when an active
        roster agent has the name; 422 for a bad config."""
        return await self._call(_calls.create_agent(request))

    async def get_agent(self, agent_id: Id) -> AgentRead:
        """404 `agent_not_found` for an unknown id (or another tenant's)."""
        return await self._call(_calls.get_agent(agent_id))

    async def list_agents(
        self,
        *,
        scope: AgentScope | str | None = None,
        status: AgentStatusFilter = None,
        q: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> AgentPage:
        """One page of agents, newest first. `status` is one status or several (the server's
        default: `active` only); `q` a case-insensitive substring of the name."""
        return await self._call(_calls.list_agents(scope, status, q, cursor, limit))

    async def iter_agents(
        self,
        *,
        scope: AgentScope | str | None = None,
        status: AgentStatusFilter = None,
        q: str | None = None,
        page_size: int = 50,
    ) -> AsyncGenerator[AgentRead, None]:
        """Every agent that `list_agents` would list, fetching pages as the iteration goes."""
        async for page in self._pages(_calls.list_agents(scope, status, q, None, page_size)):
            for item in page.items:
                yield item

    async def update_agent(
        self, agent_id: Id, request: AgentUpdate | Mapping[str, Any]
    ) -> AgentRead:
        """PATCH the name, description or icon: only the fields present (set, for a model)
        change. 409 `agent_name_taken`, `agent_archived`."""
        return await self._call(_calls.update_agent(agent_id, request))

    async def archive_agent(self, agent_id: Id) -> AgentRead:
        """Make the agent read-only and free its roster name. Idempotent."""
        return await self._call(_calls.archive_agent(agent_id))

    async def save_version(
        self, agent_id: Id, request: VersionSave | Mapping[str, Any]
    ) -> SaveResult:
        """Save a config as the agent's next version and make it active (201): the agent, the
        new version and the revision written. 409 `agent_archived`."""
        return await self._call(_calls.save_version(agent_id, request))

    async def list_versions(
        self, agent_id: Id, *, before: int | None = None, limit: int = 50
    ) -> VersionPage:
        """One page of the agent's versions (without configs), newest first; pass
        `next_cursor` as `before` for the next."""
        return await self._call(_calls.list_versions(agent_id, before, limit))

    async def iter_versions(
        self, agent_id: Id, *, page_size: int = 50
    ) -> AsyncGenerator[VersionSummary, None]:
        """Every version of the agent, newest first."""
        async for page in self._pages(_calls.list_versions(agent_id, None, page_size)):
            for item in page.items:
                yield item

    async def get_version(self, agent_id: Id, version: int) -> VersionRead:
        """One version with its config. 404 `version_not_found`."""
        return await self._call(_calls.get_version(agent_id, version))

    async def list_revisions(
        self, agent_id: Id, *, before: int | None = None, limit: int = 50
    ) -> RevisionPage:
        """One page of the agent's revision log, newest first; `next_cursor` → `before`."""
        return await self._call(_calls.list_revisions(agent_id, before, limit))

    async def iter_revisions(
        self, agent_id: Id, *, page_size: int = 50
    ) -> AsyncGenerator[RevisionRead, None]:
        """Every revision of the agent, newest first."""
        async for page in self._pages(_calls.list_revisions(agent_id, None, page_size)):
            for item in page.items:
                yield item

    async def save_agent_as(
        self, agent_id: Id, request: AgentSaveAs | Mapping[str, Any]
    ) -> SaveResult:
        """Copy the agent (its active config unless the request has one) into a new agent."""
        return await self._call(_calls.save_agent_as(agent_id, request))

    async def save_agent_to_roster(self, agent_id: Id, name: str | None = None) -> SaveResult:
        """Promote a workflow-only agent to the roster (optionally under a new name). 409
        `already_in_roster`, `agent_name_taken`."""
        return await self._call(_calls.save_agent_to_roster(agent_id, name))

    # --- bindings -------------------------------------------------------------------------

    async def put_binding(
        self,
        workflow_id: str,
        workflow_version: str,
        node_id: str,
        request: BindingPut | Mapping[str, Any],
    ) -> BindingRead:
        """Bind a workflow node to an agent, creating or replacing its binding. A
        `roster_agent` binding with `snapshot_id` pins that version; without, it follows the
        agent's active version. 422 `agent_not_in_roster`, `snapshot_not_of_agent`."""
        return await self._call(_calls.put_binding(workflow_id, workflow_version, node_id, request))

    async def get_binding(
        self, workflow_id: str, workflow_version: str, node_id: str
    ) -> BindingRead:
        """404 `binding_not_found`."""
        return await self._call(_calls.get_binding(workflow_id, workflow_version, node_id))

    async def delete_binding(self, workflow_id: str, workflow_version: str, node_id: str) -> None:
        """Remove the node's binding (the agent stays). 404 `binding_not_found`."""
        await self._call(_calls.delete_binding(workflow_id, workflow_version, node_id))

    async def list_bindings(self, workflow_id: str, workflow_version: str) -> BindingList:
        """Every binding of a workflow version, by node id."""
        return await self._call(_calls.list_bindings(workflow_id, workflow_version))

    async def copy_bindings(
        self,
        workflow_id: str,
        workflow_version: str,
        request: BindingsCopy | Mapping[str, Any],
    ) -> BindingList:
        """Copy every binding of `workflow_version` to `request.target_version`, all or
        nothing; answers the target's bindings. 409 `bindings_exist` (without `replace`)."""
        return await self._call(_calls.copy_bindings(workflow_id, workflow_version, request))

    # --- node runs ------------------------------------------------------------------------

    async def create_node_run(
        self,
        workflow_run_id: str,
        node_id: str,
        request: NodeRunRequest | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> RunRead:
        """Run a bound workflow node on its runtime session (202), or replay the run an
        identical earlier request with the same `idempotency_key` created (200). 404
        `binding_not_found`; 409 `session_busy`, `idempotency_key_reused`; 422 for every run
        validation error (`deferred_results_mismatch` for a wrong resume…). Never retried."""
        call = _calls.create_node_run(workflow_run_id, node_id, request, idempotency_key)
        return await self._call(call)

    # --- sessions -------------------------------------------------------------------------

    async def list_sessions(
        self,
        *,
        workflow_run_id: str | None = None,
        status: RuntimeSessionStatus | str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> SessionPage:
        """One page of runtime sessions, newest first."""
        return await self._call(_calls.list_sessions(workflow_run_id, status, cursor, limit))

    async def iter_sessions(
        self,
        *,
        workflow_run_id: str | None = None,
        status: RuntimeSessionStatus | str | None = None,
        page_size: int = 50,
    ) -> AsyncGenerator[SessionRead, None]:
        """Every session that `list_sessions` would list, newest first."""
        async for page in self._pages(
            _calls.list_sessions(workflow_run_id, status, None, page_size)
        ):
            for item in page.items:
                yield item

    async def get_session(self, session_id: Id) -> SessionRead:
        """404 `session_not_found`."""
        return await self._call(_calls.get_session(session_id))

    async def retire_session(self, session_id: Id, *, wait_seconds: float = 30.0) -> RetireResponse:
        """Wait up to `wait_seconds` for the session's run in flight, release its layers with
        a cleanup run and mark it `cleaned`. The one report says `cleaned`,
        `already_cleaned`, `still_running` or `cleanup_failed`. Safe to call again."""
        return await self._call(_calls.retire_session(session_id, wait_seconds))

    async def retire_workflow_run(
        self,
        workflow_run_id: str,
        *,
        wait_seconds: float = 30.0,
        cursor: str | None = None,
        limit: int = 100,
    ) -> RetireResponse:
        """Retire one page (at most `limit`, newest first) of a workflow run's sessions, all
        within one `wait_seconds`; every session of the page is reported. `next_cursor`
        (passed as `cursor`) retires the next page."""
        return await self._call(
            _calls.retire_workflow_run(workflow_run_id, wait_seconds, cursor, limit)
        )

    async def iter_retire_workflow_run(
        self, workflow_run_id: str, *, wait_seconds: float = 30.0, page_size: int = 100
    ) -> AsyncGenerator[RetireReport, None]:
        """Retire every session of a workflow run, page after page, yielding each report;
        each page gets its own `wait_seconds`."""
        call = _calls.retire_workflow_run(workflow_run_id, wait_seconds, None, page_size)
        async for page in self._pages(call):
            for item in page.reports:
                yield item

    # --- API keys (admin) -----------------------------------------------------------------

    async def create_key(self, role: ApiKeyRole | str, *, label: str | None = None) -> KeyCreated:
        """A new key of the caller's tenant; `key` (the plaintext) is in this answer only.
        Needs an `admin` key (403 `forbidden` otherwise)."""
        return await self._call(_calls.create_key(role, label))

    async def list_keys(self) -> KeyList:
        """The tenant's keys, newest first, revoked ones included; never the plaintext."""
        return await self._call(_calls.list_keys())

    async def revoke_key(self, key_id: Id) -> KeyRead:
        """Revoke a key; idempotent. 404 `key_not_found`; 409 `last_admin_key`."""
        return await self._call(_calls.revoke_key(key_id))

    # --- plumbing -------------------------------------------------------------------------

    async def _call(self, call: Call[Result]) -> Result:
        response = await self._send(
            call.method,
            self._config.base_url + call.path,
            params=call.params or None,
            json=call.json,
            headers=self._config.headers(call.headers),
            timeout=call.timeout(self._config),
        )
        return call.parse(response)

    async def _pages(self, call: Call[Result]) -> AsyncGenerator[Result, None]:
        """Each page of a list, following `next_cursor` until the last one."""
        page_call: Call[Result] | None = call
        while page_call is not None:
            page = await self._call(page_call)
            yield page
            page_call = page_call.next_page(page)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | httpx2.Timeout | None = None,
    ) -> httpx2.Response:
        try:
            return await self._http.request(
                method,
                url,
                params=params,
                json=json,
                headers=headers or self._config.headers(),
                timeout=timeout if timeout is not None else self._config.timeout,
            )
        except httpx2.TransportError as exc:
            raise StrataTransportError(f"{method} {url}: {exc!r}") from exc

    # --- workflow runs --------------------------------------------------------------------

    async def close_workflow_run(
        self,
        workflow_run_id: str,
        *,
        wait_seconds: float = 30.0,
        cancel_in_flight: bool = False,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> WorkflowRunCloseReport:
        """Close a workflow run: seal it (its new runs and node runs get 409
        `workflow_run_closed`), cancel its queued and running runs when `cancel_in_flight`,
        then retire its sessions, waiting up to `wait_seconds` for runs in flight. One page of
        sessions (`limit`, server default 100); pass the report's `next_cursor` as `cursor` for
        the next. Idempotent: call it again until `active_sessions` is 0 to finish what was
        `still_running`."""
        body = close_body(
            wait_seconds=wait_seconds,
            cancel_in_flight=cancel_in_flight,
            cursor=cursor,
            limit=limit,
        )
        response = await self._send(
            "POST",
            workflow_run_url(self._config, workflow_run_id, "close"),
            json=body,
            timeout=close_timeout(self._config, wait_seconds),
        )
        return parse_response(response, WorkflowRunCloseReport)

    async def get_workflow_run(
        self, workflow_run_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> WorkflowRunRead:
        """A workflow run: `open` or `closed`, a page of its sessions (newest first; pass
        `next_cursor` as `cursor`), the runs in flight on them and its fixed agent versions.
        404 `workflow_run_not_found` when no run of this tenant named it."""
        response = await self._send(
            "GET",
            workflow_run_url(self._config, workflow_run_id),
            params=page_params(cursor, limit),
        )
        return parse_response(response, WorkflowRunRead)
