"""`/v1/workflow-runs/{workflow_run_id}`: read a workflow run, and close it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.api.deps import Accepting, ReadDb, State
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse
from app.api.pagination import decode_cursor, encode_cursor
from app.api.roles import Reader, Runner
from app.sessions import workflow_runs
from app.sessions.schemas import (
    MAX_RETIRE_PAGE,
    WorkflowRunClose,
    WorkflowRunCloseReport,
    WorkflowRunRead,
)
from app.sessions.service import Retirer

TAG = "workflow runs"
TAG_DESCRIPTION = (
    "A workflow run is one execution of a workflow: the runtime sessions of its nodes and the "
    "runs on them. It is `open` from its first run until it is closed; closing it seals it "
    "(new runs and node runs for it get 409 `workflow_run_closed`), cancels what is still in "
    "flight on request, and retires every session."
)

router = APIRouter(prefix="/v1/workflow-runs", tags=[TAG], route_class=StrataRoute)

WorkflowRunId = Annotated[str, Path(min_length=1, max_length=64)]

_INVALID_CURSOR: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "`invalid_cursor`."},
}


@router.post(
    "/{workflow_run_id}/close",
    dependencies=[Accepting],
    summary="Close a workflow run: seal it, cancel what is in flight, retire its sessions",
    description=(
        "1. Marks the workflow run `closed` (also one Strata has not seen yet), first: from "
        "then on, runs and node runs for it get 409 `workflow_run_closed`, checked atomically "
        "with occupying a session, so nothing can reactivate a session this close retires.\n"
        "2. With `cancel_in_flight`, cancels its runs that are still `queued` or `running` "
        "(they end `cancelled`, with one terminal event, through the ordinary cancel path).\n"
        "3. Retires every session of the workflow run (a page of at most `limit`, newest "
        "first; `next_cursor` continues), waiting within one `wait_seconds` for runs in "
        "flight, like `POST /v1/sessions/retire`.\n\n"
        "Answers with a report of every session of the page (`cleaned`, `already_cleaned`, "
        "`still_running`, `cleanup_failed`, with node, binding and run ids) and "
        "`active_sessions`, the sessions still active: 0 when the workflow run is fully "
        "retired. Idempotent: calling it again reports the current state and retires what an "
        "earlier call left running."
    ),
    responses={
        **_INVALID_CURSOR,
        503: {
            "model": ErrorResponse,
            "description": "`shutting_down`: this process closes nothing more; retry on "
            "another. `database_unavailable`.",
        },
    },
)
async def close_workflow_run(
    workflow_run_id: WorkflowRunId,
    principal: Runner,
    state: State,
    body: WorkflowRunClose | None = None,
) -> WorkflowRunCloseReport:
    request = body or WorkflowRunClose()
    retirer = Retirer(
        db=state.db,
        notifier=state.notifier,
        registry=state.registry,
        settings=state.settings,
        policy=state.policy,
        principal=principal,
    )
    before = decode_cursor(request.cursor) if request.cursor else None
    report, last = await workflow_runs.WorkflowRunCloser(retirer).close(
        workflow_run_id, request, before=before
    )
    report.next_cursor = encode_cursor(last) if last is not None else None
    return report


@router.get(
    "/{workflow_run_id}",
    summary="Get a workflow run: status, sessions, runs in flight, fixed agent versions",
    description=(
        "`status` is `open` for a workflow run Strata has seen through a run on one of its "
        "sessions and that was not closed, `closed` after a close. Lists a page of its sessions "
        "(newest first), the runs not yet ended on them, and the agent versions its following "
        "bindings were fixed to by its first node runs."
    ),
    responses={
        **_INVALID_CURSOR,
        404: {
            "model": ErrorResponse,
            "description": "`workflow_run_not_found`: no run of this tenant ever named it.",
        },
    },
)
async def get_workflow_run(
    workflow_run_id: WorkflowRunId,
    db: ReadDb,
    principal: Reader,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RETIRE_PAGE, description="Sessions per page.")] = 100,
) -> WorkflowRunRead:
    read, last = await workflow_runs.get_workflow_run(
        db,
        principal.tenant_id,
        workflow_run_id,
        before=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    read.next_cursor = encode_cursor(last) if last is not None else None
    return read
