"""`/compat/agent-backend`: the seed system's run protocol over Strata's runs.

The HTTP skin of `app.compat`: each handler takes the caller with the same roles as `/v1` (create
and cancel: `runner`; reads: `reader`), calls one use case of `app.compat.service` and returns the
protocol's JSON. Errors under this prefix are rendered in the protocol's `{"detail": …}` shape by
the app's one error translation point (`app.api.errors`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from app.api.deps import Accepting, ReadDb, State, StreamKeyCheck, Write
from app.api.edge import StrataRoute
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
from app.compat import PREFIX
from app.compat import service as seed
from app.compat.schemas import (
    SeedCancelRunRequest,
    SeedCreateRunRequest,
    SeedError,
    SeedErrorList,
    SeedEvent,
    SeedEventPage,
    SeedRunCancelled,
    SeedRunCreated,
    SeedRunStatus,
    dump,
)
from app.compat.translate import CURSOR_PATTERN, START_CURSOR, decode_cursor
from app.errors import NotFound
from app.runs import service

TAG = "seed protocol (compat)"
TAG_DESCRIPTION = (
    "The run protocol of the workflow engine's agent backend that inspired Strata, served on "
    f"`{PREFIX}` over the same runs as `/v1` (a run created here is visible there, and the "
    "other way round). Query parameters these routes do not declare are ignored, as the seed "
    "server does (`/v1` refuses them). Statuses are `running | succeeded | failed | "
    "cancelled` (a paused run "
    'has `succeeded` with a `deferred_tool_call`), cursors are `"<seq>-0"` strings '
    '(`"0-0"` is the start), and errors are `{"detail": …}`. Same keys and roles as `/v1`.'
)


class _SeedRoute(StrataRoute):
    """The edge checks, except that query parameters the route does not declare are ignored.

    The seed system's server is a FastAPI app, which ignores them, and its client (and any other
    client written against that server) may rely on that: this prefix promises to behave like
    that server. The protocol's own parameters (`after`, `limit`) are declared and validated, and
    the protocol has no filters whose misspelling could go unnoticed.
    """

    rejects_unknown_query_parameters = False


router = APIRouter(prefix=PREFIX, tags=[TAG], route_class=_SeedRoute)


def _error(description: str) -> dict[str, Any]:
    return {"model": SeedError, "description": description}


def _json_error(schema: str, description: str) -> dict[str, Any]:
    # The event stream's errors are JSON: spell out their media type, or OpenAPI would list
    # them under the route's text/event-stream.
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


_COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("Missing or invalid API key."),
    413: _error("The request body is too large."),
    422: {
        "model": SeedErrorList,
        "description": "A parameter does not match the schema, or holds text no database "
        "can store (`invalid_characters`), or a cursor is not an event cursor.",
    },
    503: _error("The database is unavailable or the service is shutting down; retry."),
}
_NOT_FOUND = _error("No such run for this tenant.")
_FORBIDDEN = _error("The key's role is below `runner`.")
_READ_ERRORS: dict[int | str, dict[str, Any]] = {**_COMMON_ERRORS, 404: _NOT_FOUND}


def _json(body: str, status_code: int = status.HTTP_200_OK) -> Response:
    """A pre-serialized body: the models are dumped once, without unset optional fields."""
    return Response(body, status_code, media_type="application/json")


async def _run_uuid(
    run_id: Annotated[str, Path(description="A run id (`run_id`).")],
) -> uuid.UUID:
    """The run id; anything that is not a run id names no run (404, like an unknown one)."""
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise NotFound("run not found", code="run_not_found") from None


RunId = Annotated[uuid.UUID, Depends(_run_uuid)]


@router.post(
    "/runs",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Accepting],
    response_model=SeedRunCreated,
    summary="Create a run (seed protocol)",
    description=(
        "Validates the request like `POST /v1/runs` and queues the run: 202 with "
        "`{run_id, status}`, also when the same `idempotency_key` and body were sent before "
        "(the run created then). Layer types must be on Strata's allow-list: the seed's "
        "plugin-daemon types such as `dify.plugin.llm` are a 422."
    ),
    responses={
        **_COMMON_ERRORS,
        403: _FORBIDDEN,
        409: _error("The `idempotency_key` was used for a different request."),
        422: {
            "model": SeedErrorList,
            "description": "The body does not match the schema, or the run cannot execute: "
            "each item's `type` is Strata's error code (`unknown_layer_type`, "
            "`snapshot_layers_mismatch`…), `loc` where, `ctx` the details.",
        },
        429: _error("Too many queued runs for this tenant; retry after `Retry-After`."),
    },
)
async def create_run(body: SeedCreateRunRequest, principal: Runner, state: State) -> Response:
    created = await seed.create_run(
        state.db,
        principal=principal,
        request=body,
        registry=state.registry,
        settings=state.settings,
        policy=state.policy,
        quota=state.quota,
        directory=state.directory,
    )
    bind_run_id(uuid.UUID(created.run_id))
    return _json(dump(created), status.HTTP_202_ACCEPTED)


@router.get(
    "/runs/{run_id}",
    response_model=SeedRunStatus,
    summary="Get a run's status (seed protocol)",
    description=(
        "`{run_id, status, created_at, updated_at, error}`: queued, running and cancelling "
        "runs are `running`, a paused run is `succeeded`; `error` is set for failed and "
        "cancelled runs."
    ),
    responses=_READ_ERRORS,
)
async def get_run(run_id: RunId, db: ReadDb, principal: Reader) -> Response:
    return _json(dump(await seed.get_status(db, principal, run_id)))


@router.post(
    "/runs/{run_id}/cancel",
    response_model=SeedRunCancelled,
    summary="Cancel a run (seed protocol)",
    description=(
        '`{run_id, status: "cancelled"}`. A queued run is cancelled at once; a running one '
        "stops once its worker has exited every layer (its status reads `running` until then, "
        "and its stream ends with `run_cancelled`). Idempotent. Strata keeps one cancel text: "
        "`message`, else `reason`, or `<reason>: <message>` when both are given."
    ),
    responses={
        **_READ_ERRORS,
        403: _FORBIDDEN,
        409: _error("The run already succeeded (or stopped to ask a human) or failed."),
    },
)
async def cancel_run(
    run_id: RunId,
    write: Write,
    principal: Runner,
    state: State,
    body: SeedCancelRunRequest | None = None,
) -> Response:
    cancelled = await write(
        seed.cancel_run,
        principal=principal,
        run_id=run_id,
        request=body or SeedCancelRunRequest(),
        policy=state.policy,
    )
    return _json(dump(cancelled))


@router.get(
    "/runs/{run_id}/events",
    response_model=SeedEventPage,
    summary="Page through a run's events (seed protocol)",
    description=(
        'Events after the cursor `after` (`"0-0"` or absent: from the start), oldest first, '
        "at most `limit`. Strata's `run_queued`, `run_cancelling` and `run_requeued` have no "
        "counterpart and are skipped. `next_cursor` is null once the page holds the terminal "
        "event, or the run had ended before `after`."
    ),
    responses=_READ_ERRORS,
)
async def list_events(
    run_id: RunId,
    db: ReadDb,
    principal: Reader,
    after: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description='Exclusive cursor: an event\'s `id`, or `"0-0"` for the start.',
            examples=[START_CURSOR],
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    page = await seed.events_page(db, principal, run_id, after=decode_cursor(after), limit=limit)
    return _json(dump(page))


async def _existing_run(run_id: RunId, principal: Reader, state: State) -> uuid.UUID:
    await state.db.read(service.ensure_run, principal, run_id)
    return run_id


async def _stream_start(
    after: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description="Exclusive cursor; wins over `Last-Event-ID`.",
            examples=[START_CURSOR],
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="The `id` of the last event received."),
    ] = None,
) -> int:
    """The exclusive start seq, checked before the stream starts (a bad cursor is a 422)."""
    if after is not None:
        return decode_cursor(after)
    return decode_cursor(last_event_id, source="header")


@router.get(
    "/runs/{run_id}/events/sse",
    response_class=Response,  # no media type: the 200 is OPENAPI_200, an event stream
    summary="Stream a run's events (seed protocol, SSE)",
    description=(
        "Server-sent events `id: <cursor>`, `event: <type>`, `data: <event JSON>` (the events "
        "of the page route). Starts after `after` (query) or else `Last-Event-ID` (header), "
        "replays stored events, then follows live ones with keep-alive comments while idle; "
        "closes right after the terminal event. Reconnect with `Last-Event-ID` to resume "
        "without gaps or repeats. It also ends early — reconnect the same way — when the "
        "reader takes nothing for `STRATA_SSE_STALL_SECONDS` (the connection is dropped), and "
        "with a final `: api key revoked` comment when the key is revoked (within "
        "`STRATA_KEY_CACHE_SECONDS`; a reconnect then gets 401)."
    ),
    responses={
        200: OPENAPI_200,
        **{
            code: _json_error(
                "SeedErrorList" if code == 422 else "SeedError", str(entry["description"])
            )
            for code, entry in _READ_ERRORS.items()
        },
    },
)
async def stream_events(
    run_id: Annotated[uuid.UUID, Depends(_existing_run)],
    start: Annotated[int, Depends(_stream_start)],
    principal: Reader,
    state: State,
    key_check: StreamKeyCheck,
) -> EventStream:
    items = seed.follow_events(
        state.db,
        state.notifier,
        principal,
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


def _frame(event: SeedEvent) -> bytes:
    return event_frame(dump(event), event=event.type, event_id=event.id)
