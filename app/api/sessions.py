"""`/v1/sessions`: read runtime sessions, and wait-and-retire them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import State
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse
from app.api.pagination import decode_cursor, encode_cursor
from app.api.roles import Reader, Runner
from app.keys import Principal
from app.models import RuntimeSessionStatus, WorkflowAgentRuntimeSession
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


def session_read(row: WorkflowAgentRuntimeSession) -> SessionRead:
    return SessionRead.model_validate(row, from_attributes=True)


@router.get(
    "",
    summary="List runtime sessions",
    responses={
        401: _ERRORS[401],
        400: {"model": ErrorResponse, "description": "`invalid_cursor`."},
    },
)
async def list_sessions(
    principal: Reader,
    state: State,
    workflow_run_id: Annotated[str | None, Query(max_length=64)] = None,
    status: RuntimeSessionStatus | None = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SessionPage:
    rows = await service.list_sessions(
        state.read_session_factory,
        principal,
        workflow_run_id=workflow_run_id,
        status=status,
        before=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    return SessionPage(
        items=[session_read(row) for row in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


@router.get("/{session_id}", summary="Get a runtime session", responses=_ERRORS)
async def get_session(session_id: uuid.UUID, principal: Reader, state: State) -> SessionRead:
    return session_read(
        await service.get_session(state.read_session_factory, principal, session_id)
    )


def _retirer(state: State, principal: Principal) -> service.Retirer:
    return service.Retirer(
        session_factory=state.session_factory,
        read_factory=state.read_session_factory,
        notifier=state.notifier,
        registry=state.registry,
        settings=state.settings,
        principal=principal,
    )


@router.post(
    "/retire",
    summary="Wait for and retire every active session of a workflow run",
    description=(
        "For each ACTIVE session of `workflow_run_id`: waits up to `wait_seconds` for its run "
        "in flight, then runs a cleanup run (every layer exits with DELETE) and marks it "
        "`cleaned`. Reports per session: `cleaned`, `already_cleaned`, `still_running` or "
        "`cleanup_failed`. Safe to call again."
    ),
    responses={401: _ERRORS[401]},
)
async def retire_workflow_run(
    body: RetireWorkflowRun, principal: Runner, state: State
) -> RetireResponse:
    reports = await _retirer(state, principal).retire_workflow_run(
        body.workflow_run_id, body.wait_seconds
    )
    return RetireResponse(reports=reports)


@router.post(
    "/{session_id}/retire",
    summary="Wait for and retire one session",
    description="Like `POST /v1/sessions/retire`, for one session.",
    responses=_ERRORS,
)
async def retire_session(
    session_id: uuid.UUID,
    principal: Runner,
    state: State,
    body: RetireOne | None = None,
) -> RetireResponse:
    retirer = _retirer(state, principal)
    await service.get_session(state.read_session_factory, principal, session_id)
    report = await retirer.retire(session_id, (body or RetireOne()).wait_seconds)
    return RetireResponse(reports=[report])
