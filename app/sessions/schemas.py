"""Schemas of the runtime-session API."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.models import RuntimeSessionStatus
from app.schemas.strict import StrictFloat


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
    session_id: uuid.UUID
    node_id: str | None = None
    binding_id: str | None = None
    result: RetireResult
    current_run_id: uuid.UUID | None = Field(
        default=None, description="`still_running`: the run in flight on the session."
    )
    cleanup_run_id: uuid.UUID | None = None
    reason: str | None = Field(default=None, description="Why the cleanup failed or waited.")


class RetireResponse(BaseModel):
    reports: list[RetireReport]
    next_cursor: str | None = Field(
        default=None,
        description="More sessions than `limit`: send it as `cursor` to retire the next page.",
    )
