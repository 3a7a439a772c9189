"""Schemas of the runtime-session API."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.models import RunPurpose, RunStatus, RuntimeSessionStatus, WorkflowRunStatus
from app.schemas.strict import StrictBool, StrictFloat, StrictInt


class SessionRead(BaseModel):
    id: uuid.UUID
    status: RuntimeSessionStatus
    app_id: str
    workflow_id: str
    workflow_run_id: str
    node_id: str
    node_execution_id: str | None
    binding_id: str
    agent_id: str
    agent_config_snapshot_id: str | None
    backend_run_id: uuid.UUID | None = Field(description="The last run that saved or retired it.")
    current_run_id: uuid.UUID | None = Field(description="The run in flight on it, if any.")
    cleanup_run_id: uuid.UUID | None
    cleaned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    session_snapshot: dict[str, Any] | None
    composition_layer_specs: list[dict[str, Any]] | None = Field(
        description="The composition without its model layer: what a cleanup run replays."
    )


class SessionPage(BaseModel):
    items: list[SessionRead]
    next_cursor: str | None


MAX_RETIRE_PAGE = 500
"""Sessions one `POST /v1/sessions/retire` answers for; the rest come in later pages."""


class RetireOne(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    wait_seconds: StrictFloat = Field(
        default=30.0,
        ge=0,
        description="How long to wait for a run in flight to end (capped by the server).",
    )


class RetireWorkflowRun(RetireOne):
    workflow_run_id: str = Field(min_length=1, max_length=64)
    cursor: str | None = Field(
        default=None, description="`next_cursor` of the previous answer: retire the next page."
    )
    limit: int = Field(
        default=100,
        ge=1,
        le=MAX_RETIRE_PAGE,
        description=f"Sessions per answer (at most {MAX_RETIRE_PAGE}); more are in the next page.",
    )


class RetireResult(StrEnum):
    """What retiring one session did."""

    CLEANED = "cleaned"  # the cleanup run released every layer; the session is retired
    ALREADY_CLEANED = "already_cleaned"  # it was retired before; nothing to do
    STILL_RUNNING = "still_running"  # a run was still in flight at the deadline; still ACTIVE
    CLEANUP_FAILED = "cleanup_failed"  # the cleanup run failed; the session stays ACTIVE


class RetireReport(BaseModel):
    """What retiring one session did, with the ids that locate it and its runs."""

    session_id: uuid.UUID
    node_id: str | None = None
    binding_id: str | None = None
    agent_id: str | None = Field(default=None, description="The session scope's agent id.")
    result: RetireResult
    current_run_id: uuid.UUID | None = Field(
        default=None, description="`still_running`: the run in flight on the session."
    )
    cleanup_run_id: uuid.UUID | None = Field(
        default=None,
        description="The cleanup run that released the session's layers, when one did (a "
        "session whose last run released every layer itself needs none).",
    )
    last_run_id: uuid.UUID | None = Field(
        default=None,
        description="The last run (not a cleanup run) whose end saved or retired the session.",
    )
    reason: str | None = Field(
        default=None, description="Why the cleanup failed or waited, or how the session ended."
    )


class RetireResponse(BaseModel):
    reports: list[RetireReport]
    next_cursor: str | None = Field(
        default=None,
        description="More sessions than `limit`: send it as `cursor` to retire the next page.",
    )


# --- workflow runs ------------------------------------------------------------------------------

MAX_CLOSE_WAIT_SECONDS = 600.0
"""The largest `wait_seconds` a close accepts; the server caps it further by
`STRATA_WAIT_MAX_SECONDS`."""


class WorkflowRunClose(BaseModel):
    """`POST /v1/workflow-runs/{workflow_run_id}/close`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    wait_seconds: StrictFloat = Field(
        default=30.0,
        ge=0,
        le=MAX_CLOSE_WAIT_SECONDS,
        description="How long, in all, to wait for runs in flight (cancelled ones included) to "
        "end before their sessions are reported `still_running`; capped by the server's "
        "`STRATA_WAIT_MAX_SECONDS` (default 60). A cleanup run that started gets at least 30 s.",
    )
    cancel_in_flight: StrictBool = Field(
        default=False,
        description="Cancel the workflow run's runs that are still queued or running (they end "
        "`cancelled`) before retiring its sessions.",
    )
    cursor: str | None = Field(
        default=None,
        description="`next_cursor` of the previous answer: retire the next page of sessions "
        "(the workflow run is already closed; `cancel_in_flight` applies again).",
    )
    limit: StrictInt = Field(
        default=100,
        ge=1,
        le=MAX_RETIRE_PAGE,
        description=f"Sessions retired and reported per answer (at most {MAX_RETIRE_PAGE}).",
    )


class WorkflowRunCloseReport(RetireResponse):
    """What a close did: the workflow run's state, the runs it cancelled, and one report per
    session of this page (every session, those retired before included)."""

    workflow_run_id: str
    status: WorkflowRunStatus = Field(description="Always `closed` after a close.")
    closed_at: datetime
    cancelled_run_ids: list[uuid.UUID] = Field(
        description="Runs this call cancelled (`cancel_in_flight`): queued ones are `cancelled` "
        "at once, running ones once their worker has released their layers."
    )
    active_sessions: int = Field(
        description="Sessions of the workflow run (all pages) still `active` after this call; "
        "0 means every session is retired."
    )


class WorkflowRunSessionRead(BaseModel):
    """A session of a workflow run, without its snapshot (`GET /v1/sessions/{id}` has it)."""

    session_id: uuid.UUID
    node_id: str
    binding_id: str
    agent_id: str
    status: RuntimeSessionStatus
    current_run_id: uuid.UUID | None = Field(description="The run in flight on it, if any.")
    last_run_id: uuid.UUID | None = Field(description="The last run whose end saved or retired it.")
    cleanup_run_id: uuid.UUID | None
    cleaned_at: datetime | None
    updated_at: datetime


class WorkflowRunRunInFlight(BaseModel):
    """A run of the workflow run that has not ended."""

    run_id: uuid.UUID
    status: RunStatus
    purpose: RunPurpose = Field(description="`cleanup` for a retire's cleanup run.")
    session_id: uuid.UUID
    node_id: str


class WorkflowRunAgentVersionRead(BaseModel):
    """The agent version fixed for this workflow run's following bindings of one agent."""

    agent_id: uuid.UUID
    snapshot_id: uuid.UUID
    version: int
    fixed_at: datetime = Field(description="When the workflow run's first node run fixed it.")


class WorkflowRunRead(BaseModel):
    """`GET /v1/workflow-runs/{workflow_run_id}`."""

    workflow_run_id: str
    status: WorkflowRunStatus = Field(
        description="`open` (runs may start) or `closed` (sealed: new runs get 409 "
        "`workflow_run_closed`)."
    )
    created_at: datetime = Field(description="When Strata first saw the workflow run.")
    closed_at: datetime | None
    sessions: list[WorkflowRunSessionRead] = Field(
        description="A page of its sessions, newest first (`limit`, `next_cursor`)."
    )
    runs_in_flight: list[WorkflowRunRunInFlight] = Field(
        description="The runs not yet ended on the sessions of this page, oldest first."
    )
    agent_versions: list[WorkflowRunAgentVersionRead] = Field(
        description="Agent versions fixed for the rest of the workflow run, by agent."
    )
    next_cursor: str | None = Field(
        default=None, description="More sessions than `limit`: pass it as `cursor`."
    )
