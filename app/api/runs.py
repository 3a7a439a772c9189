"""`/v1/runs`: create, read, list, cancel, wait, and the event log (paged and SSE)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel

from app.api.deps import Accepting, ReadDb, State, StreamKeyCheck, Write, app_state
from app.api.edge import INT32_MAX, StrataRoute
from app.api.errors import ErrorResponse
from app.api.lean import lean
from app.api.pagination import decode_cursor, encode_cursor
from app.api.query import Instant, check_time_range
from app.api.request_context import bind_run_id
from app.api.roles import Reader, Runner
from app.api.sse import (
    OPENAPI_200,
    EventStream,
    event_frame,
    open_event_stream,
    sse_frames,
    stream_tick_seconds,
)
from app.errors import BadRequest
from app.models import RunPurpose, RunStatus
from app.runs import repository, service
from app.runs.outcome import TERMINAL_EVENT_TYPES
from app.runs.schemas import (
    CancelRunRequest,
    CreateRunRequest,
    RunEventPage,
    RunEventRead,
    RunPage,
    RunRead,
)

router = APIRouter(prefix="/v1/runs", tags=["runs"], route_class=StrataRoute)


def _json(model: BaseModel, status_code: int = 200) -> Response:
    """A model as a JSON response, serialized once (the route still declares its response model
    for the OpenAPI document; returning a `Response` skips FastAPI's re-validation)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    404: {"model": ErrorResponse, "description": "No such run for this tenant."},
}


_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
# Errors of the event stream are JSON, not events: spell out their media type, or OpenAPI
# would list them under the route's text/event-stream.
_SSE_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": description, "content": _JSON_ERROR}
    for code, description in [
        (400, "`invalid_last_event_id`."),
        (401, "Missing or invalid API key."),
        (404, "No such run for this tenant."),
        (413, "`payload_too_large`."),
        (422, "`request_invalid`."),
        (503, "`database_unavailable` or `shutting_down`."),
    ]
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Accepting],
    response_model=RunRead,
    summary="Create a run",
    description=(
        "Validates the request (layer types, deps, configs, snapshot against the composition, "
        "`on_exit` names, purpose rules) and queues the run. 202 with the run when it was "
        "queued; 200 with the existing run when the same `Idempotency-Key` was used for the "
        "same request before."
    ),
    responses={
        **_ERRORS,
        200: {"model": RunRead, "description": "Replay of an earlier request with this key."},
        409: {
            "model": ErrorResponse,
            "description": "`idempotency_key_reused`; for a run with a `session` scope, "
            "`session_busy` or `workflow_run_closed`.",
        },
        422: {"model": ErrorResponse, "description": "The request cannot run; `code` says why."},
        429: {"model": ErrorResponse, "description": "`queue_full`: too many queued runs."},
        503: {"model": ErrorResponse, "description": "Shutting down or database unavailable."},
    },
)
@lean
async def create_run(
    body: CreateRunRequest,
    principal: Runner,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=1, max_length=255),
    ] = None,
) -> Response:
    state = app_state(request)  # not `State`: see `app_state`
    run, created = await service.create_run(
        state.db,
        principal=principal,
        request=body,
        idempotency_key=idempotency_key,
        registry=state.registry,
        settings=state.settings,
        policy=state.policy,
        quota=state.quota,
        directory=state.directory,
    )
    bind_run_id(run.id)
    return _json(run, status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


@router.get(
    "",
    summary="List runs",
    description=(
        "The tenant's runs, newest first, `limit` a page; `next_cursor` continues with the same "
        "filters. Every filter given must hold. `workflow_run_id` and `node_id` match the "
        "runtime session a run belongs to (node runs, session-scoped runs and the cleanup runs "
        "of their retire); a run posted without `session` has neither. The created range is "
        "half-open: `created_after` ≤ `created_at` < `created_before`, ISO 8601 with an offset "
        "(`Z` or `%2B02:00`; a time without one is 422). Any other query parameter is 422 "
        "`unknown_query_parameter`."
    ),
    responses={
        401: _ERRORS[401],
        400: {"model": ErrorResponse, "description": "`invalid_cursor`."},
        422: {
            "model": ErrorResponse,
            "description": "`request_invalid` (e.g. a time without an offset), "
            "`invalid_time_range`, `unknown_query_parameter`.",
        },
    },
)
async def list_runs(
    db: ReadDb,
    principal: Reader,
    status_filter: Annotated[
        list[RunStatus] | None, Query(alias="status", description="Repeat for several.")
    ] = None,
    purpose: Annotated[
        RunPurpose | None, Query(description="`agent` runs, or the `cleanup` runs of retires.")
    ] = None,
    workflow_run_id: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Runs of this workflow run's sessions."),
    ] = None,
    node_id: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Runs of sessions of this node."),
    ] = None,
    session_id: Annotated[
        uuid.UUID | None, Query(description="Runs of this runtime session.")
    ] = None,
    created_after: Annotated[
        Instant | None, Query(description="Created at or after this time (inclusive).")
    ] = None,
    created_before: Annotated[
        Instant | None, Query(description="Created before this time (exclusive).")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunPage:
    check_time_range(created_after, created_before)
    filters = repository.RunFilters(
        statuses=status_filter or (),
        purpose=purpose,
        session_id=session_id,
        workflow_run_id=workflow_run_id,
        node_id=node_id,
        created_after=created_after,
        created_before=created_before,
    )
    runs = await repository.list_runs(
        db,
        principal.tenant_id,
        filters=filters,
        before=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = runs[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(runs) > limit else None
    return RunPage(items=[service.run_read(run) for run in page], next_cursor=next_cursor)


@router.get("/{run_id}", summary="Get a run", responses=_ERRORS)
async def get_run(run_id: uuid.UUID, db: ReadDb, principal: Reader) -> RunRead:
    return await service.get_run(db, principal, run_id)


@router.post(
    "/{run_id}/cancel",
    summary="Cancel a run",
    description=(
        "A queued run is cancelled at once; a running one becomes `cancelling` until its worker "
        "has stopped the agent and exited every layer, then `cancelled`. Idempotent."
    ),
    responses={
        **_ERRORS,
        409: {"model": ErrorResponse, "description": "`run_already_finished`."},
    },
)
async def cancel_run(
    run_id: uuid.UUID,
    write: Write,
    principal: Runner,
    state: State,
    body: CancelRunRequest | None = None,
) -> RunRead:
    return await write(
        service.cancel_run,
        principal=principal,
        run_id=run_id,
        reason=body.reason if body else None,
        policy=state.policy,
    )


@router.get(
    "/{run_id}/wait",
    response_model=RunRead,
    summary="Wait for a run to end",
    description=(
        "Returns as soon as the run is terminal, or its current state when `timeout_seconds` "
        "(capped by the server's `STRATA_WAIT_MAX_SECONDS`) passes first."
    ),
    responses=_ERRORS,
)
@lean
async def wait_run(
    run_id: uuid.UUID,
    principal: Reader,
    request: Request,
    timeout_seconds: Annotated[float, Query(ge=0)] = 30.0,
) -> Response:
    state = app_state(request)  # not `State`: see `app_state`
    timeout = min(timeout_seconds, state.settings.wait_max_seconds)
    run = await service.wait_for_run(
        state.db,
        state.notifier,
        principal=principal,
        run_id=run_id,
        timeout=timeout,
        directory=state.directory,
    )
    return _json(run)


@router.get(
    "/{run_id}/events",
    summary="Page through a run's events",
    description=(
        "Events with `seq > after`, oldest first, at most `limit`. The log ends with exactly "
        "one terminal event; nothing is appended after it."
    ),
    responses=_ERRORS,
)
async def list_events(
    run_id: uuid.UUID,
    db: ReadDb,
    principal: Reader,
    after: Annotated[int, Query(ge=0, le=INT32_MAX, description="Exclusive cursor (a seq).")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RunEventPage:
    items = await service.list_events(db, principal, run_id, after=after, limit=limit)
    return RunEventPage(
        items=items,
        next_cursor=items[-1].seq if items else after,
        terminal=bool(items) and items[-1].type in TERMINAL_EVENT_TYPES,
    )


async def _existing_run(run_id: uuid.UUID, principal: Reader, state: State) -> uuid.UUID:
    await state.db.read(service.ensure_run, principal, run_id)
    return run_id


async def _stream_start(
    after: Annotated[
        int | None,
        Query(ge=0, le=INT32_MAX, description="Exclusive cursor; wins over the header."),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="The last seq a client received.")
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="lastEventId",
            description="The same as `Last-Event-ID`, for EventSource polyfills that send it in "
            "the query when they reconnect; the header wins over it.",
        ),
    ] = None,
) -> int:
    """The exclusive start cursor, checked before the stream starts (a bad one is a 400).

    `lastEventId` is declared because browser EventSource polyfills (which exist to send the
    `Authorization` header the native one cannot) add it to the URL on reconnect: refused as an
    unknown parameter, their reconnects would fail; ignored, they would replay from the start.
    """
    if after is not None:
        return after
    if last_event_id is not None and last_event_id.strip():
        return _parse_last_event_id(last_event_id)
    return _parse_last_event_id(last_event_id_query)


@router.get(
    "/{run_id}/events/stream",
    response_class=Response,  # no media type: the 200 is OPENAPI_200, an event stream
    summary="Stream a run's events (SSE)",
    description=(
        "Server-sent events: `id: <seq>`, `event: <type>`, `data: <event JSON>`. Starts after "
        "`after` (query) or else `Last-Event-ID` (header), replays stored events, then follows "
        "live ones, with keep-alive comments while idle. The stream closes right after the "
        "terminal event; reconnect with `Last-Event-ID` to resume without gaps or repeats. "
        "It also ends early — reconnect the same way — when the reader takes nothing for "
        "`STRATA_SSE_STALL_SECONDS` (the connection is dropped), and with a final "
        "`: api key revoked` comment when the key is revoked (within `STRATA_KEY_CACHE_SECONDS`; "
        "a reconnect then gets 401)."
    ),
    responses={200: OPENAPI_200, **_SSE_ERRORS},
)
async def stream_events(
    run_id: Annotated[uuid.UUID, Depends(_existing_run)],
    start: Annotated[int, Depends(_stream_start)],
    state: State,
    key_check: StreamKeyCheck,
) -> EventStream:
    items = service.follow_events(
        state.db,
        state.notifier,
        run_id,
        after=start,
        idle_seconds=stream_tick_seconds(state, key_check.interval),
    )
    frames = sse_frames(
        items,
        _frame,
        keepalive_seconds=state.settings.sse_keepalive_seconds,
        key_still_valid=key_check.still_valid,
    )
    return open_event_stream(state, frames)


def _frame(event: RunEventRead) -> bytes:
    return event_frame(event.model_dump_json(), event=event.type, event_id=str(event.seq))


def _parse_last_event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    try:
        parsed = int(value)
    except ValueError:
        raise BadRequest(
            "Last-Event-ID must be an event seq", code="invalid_last_event_id"
        ) from None
    if not 0 <= parsed <= INT32_MAX:
        raise BadRequest("Last-Event-ID must be an event seq", code="invalid_last_event_id")
    return parsed
