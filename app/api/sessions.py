"""`/v1/sessions`: read runtime sessions, and wait-and-retire them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import Accepting, ReadDb, State
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse
from app.api.pagination import decode_cursor, encode_cursor
from app.api.roles import Reader, Runner
from app.keys import Principal
from app.lifespan import AppState
from app.models import RuntimeSessionStatus
from app.sessions import service
from app.sessions.schemas import (
    RetireOne,
    RetireResponse,
    RetireWorkflowRun,
    SessionPage,
    SessionRead,
)

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], route_class=StrataRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    404: {"model": ErrorResponse, "description": "No such session for this tenant."},
}
_SHUTTING_DOWN: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorResponse,
        "description": "`shutting_down`: this process retires nothing more; retry on another.",
    },
}


@router.get(
    "",
    summary="List runtime sessions",
    description=(
        "The tenant's runtime sessions, newest first, `limit` a page; `next_cursor` continues "
        "with the same filters. Every filter given must hold. Any other query parameter is 422 "
        "`unknown_query_parameter`."
    ),
    responses={
        401: _ERRORS[401],
        400: {"model": ErrorResponse, "description": "`invalid_cursor`."},
    },
)
async def list_sessions(
    db: ReadDb,
    principal: Reader,
    workflow_run_id: Annotated[
        str | None, Query(max_length=64, description="Sessions of this workflow run.")
    ] = None,
    node_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="Sessions of this workflow node (in every workflow run, unless "
            "`workflow_run_id` is given too).",
        ),
    ] = None,
    status: Annotated[
        RuntimeSessionStatus | None, Query(description="`active` or `cleaned`.")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SessionPage:
    rows = await service.list_sessions(
        db,
        principal,
        workflow_run_id=workflow_run_id,
        node_id=node_id,
        status=status,
        before=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    return SessionPage(
        items=page,
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


@router.get("/{session_id}", summary="Get a runtime session", responses=_ERRORS)
async def get_session(session_id: uuid.UUID, db: ReadDb, principal: Reader) -> SessionRead:
    return await service.get_session(db, principal, session_id)


def _retirer(state: AppState, principal: Principal) -> service.Retirer:
    return service.Retirer(
        db=state.db,
        notifier=state.notifier,
        registry=state.registry,
        settings=state.settings,
        policy=state.policy,
        principal=principal,
    )


@router.post(
    "/retire",
    dependencies=[Accepting],
    summary="Wait for and retire every session of a workflow run",
    description=(
        "For each session of `workflow_run_id` (a page of at most `limit`, newest first; "
        "`next_cursor` continues): waits, within one `wait_seconds` for the whole page, for its "
        "run in flight, then runs a cleanup run that releases the layers still holding "
        "resources (every layer exits with DELETE) and marks it `cleaned`. A few sessions are "
        "retired at once. Reports every session of the page: `cleaned`, `already_cleaned`, "
        "`still_running` or `cleanup_failed`. Safe to call again."
    ),
    responses={
        401: _ERRORS[401],
        400: {"model": ErrorResponse, "description": "`invalid_cursor`."},
        **_SHUTTING_DOWN,
    },
)
async def retire_workflow_run(
    body: RetireWorkflowRun, principal: Runner, state: State
) -> RetireResponse:
    reports, last = await _retirer(state, principal).retire_workflow_run(
        body.workflow_run_id,
        body.wait_seconds,
        before=decode_cursor(body.cursor) if body.cursor else None,
        limit=body.limit,
    )
    return RetireResponse(
        reports=reports, next_cursor=encode_cursor(last) if last is not None else None
    )


@router.post(
    "/{session_id}/retire",
    dependencies=[Accepting],
    summary="Wait for and retire one session",
    description="Like `POST /v1/sessions/retire`, for one session.",
    responses={**_ERRORS, **_SHUTTING_DOWN},
)
async def retire_session(
    session_id: uuid.UUID,
    principal: Runner,
    state: State,
    body: RetireOne | None = None,
) -> RetireResponse:
    retirer = _retirer(state, principal)
    await state.db.read(service.get_session, principal, session_id)
    report = await retirer.retire(session_id, (body or RetireOne()).wait_seconds)
    return RetireResponse(reports=[report])
