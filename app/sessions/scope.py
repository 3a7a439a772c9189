"""Binding runs to runtime sessions: load, occupy and update a scope's row.

A scope is (tenant, workflow_run_id, node_id, binding_id, agent_id). Its row holds the latest
ACTIVE snapshot and `current_run_id`, the one run allowed in flight on it.

- Creating a run on a scope (`resolve_snapshot`, then `occupy`) takes the row's ACTIVE snapshot
  as the run's incoming snapshot and sets `current_run_id`; a second run while one is in flight
  is `session_busy` (409). The row is locked (`FOR UPDATE`; SQLite serializes writers) and a
  concurrent first insert of the same scope is caught by the unique constraint, so exactly one
  of two racing requests wins.
- When a run ends (`on_run_terminal`, called in the terminal transaction): `succeeded`/`paused`
  save the new snapshot, the run id and the replayable layer specs; `failed`/`cancelled` retire
  the row (status `cleaned`), so nothing resumes from stale state — except a lost worker, where
  nothing newer exists and the previous snapshot stays ACTIVE. A retire's cleanup run marks the
  row `cleaned` on success and leaves it ACTIVE otherwise.
- A run on a `cleaned` scope starts fresh: the row becomes ACTIVE again without a snapshot.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, ValidationFailed
from app.models import Run, RunStatus, RuntimeSessionStatus, WorkflowAgentRuntimeSession
from app.models.base import utcnow
from app.notifier import Notifier, session_topic
from app.runs.outcome import ErrorType, RunOutcome
from app.runs.schemas import SessionScope

RETIRE_ROLE = "retire"
"""`runs.inputs["session_role"]` of a retire's cleanup run."""


def _scope_filter(tenant_id: uuid.UUID, scope: SessionScope) -> Any:
    table = WorkflowAgentRuntimeSession
    return (
        (table.tenant_id == tenant_id)
        & (table.workflow_run_id == scope.workflow_run_id)
        & (table.node_id == scope.node_id)
        & (table.binding_id == scope.binding_id)
        & (table.agent_id == scope.agent_id)
    )


def _busy(row: WorkflowAgentRuntimeSession) -> Conflict:
    return Conflict(
        "this session has a run in flight; wait for it to end",
        code="session_busy",
        details={"session_id": str(row.id), "run_id": str(row.current_run_id)},
    )


async def resolve_snapshot(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    scope: SessionScope,
    inline_snapshot: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The snapshot a run on `scope` starts from (read only; `occupy` re-checks under lock).

    The scope's ACTIVE snapshot wins; a request may repeat it inline, but an inline snapshot
    that differs from it is `session_snapshot_conflict` (422).
    """
    row = await session.scalar(
        select(WorkflowAgentRuntimeSession).where(_scope_filter(tenant_id, scope))
    )
    if row is None or row.status is RuntimeSessionStatus.CLEANED:
        return inline_snapshot
    if row.current_run_id is not None:
        raise _busy(row)
    if row.session_snapshot is None:
        return inline_snapshot
    if inline_snapshot is not None and inline_snapshot != row.session_snapshot:
        raise ValidationFailed(
            "the request carries a session snapshot that differs from the session's; "
            "omit it to resume the session",
            code="session_snapshot_conflict",
            details={"field": "session_snapshot", "session_id": str(row.id)},
        )
    return row.session_snapshot


async def occupy(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    scope: SessionScope,
    *,
    run_id: uuid.UUID,
    expected_snapshot: dict[str, Any] | None,
) -> WorkflowAgentRuntimeSession:
    """Lock (or create) the scope's row and make `run_id` its run in flight."""
    row = await _lock_scope(session, tenant_id, scope)
    if row is None:
        row = WorkflowAgentRuntimeSession(
            tenant_id=tenant_id,
            app_id=scope.app_id,
            workflow_id=scope.workflow_id,
            workflow_run_id=scope.workflow_run_id,
            node_id=scope.node_id,
            node_execution_id=scope.node_execution_id,
            binding_id=scope.binding_id,
            agent_id=scope.agent_id,
            agent_config_snapshot_id=scope.agent_config_snapshot_id,
            current_run_id=run_id,
        )
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
            return row
        except IntegrityError:  # a concurrent request created it first
            row = await _lock_scope(session, tenant_id, scope)
            assert row is not None
    if row.current_run_id is not None:
        raise _busy(row)
    if row.status is RuntimeSessionStatus.CLEANED:
        row.status = RuntimeSessionStatus.ACTIVE
        row.session_snapshot = None
        row.cleaned_at = None
        row.cleanup_run_id = None
    elif row.session_snapshot is not None and expected_snapshot != row.session_snapshot:
        raise _busy(row)  # it changed since the request was validated: a run just ended
    row.node_execution_id = scope.node_execution_id
    row.agent_config_snapshot_id = scope.agent_config_snapshot_id
    row.app_id, row.workflow_id = scope.app_id, scope.workflow_id
    row.current_run_id = run_id
    row.updated_at = utcnow()
    await session.flush()
    return row


async def _lock_scope(
    session: AsyncSession, tenant_id: uuid.UUID, scope: SessionScope
) -> WorkflowAgentRuntimeSession | None:
    return await session.scalar(
        select(WorkflowAgentRuntimeSession)
        .where(_scope_filter(tenant_id, scope))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def on_run_terminal(
    session: AsyncSession, notifier: Notifier, run: Run, outcome: RunOutcome
) -> None:
    """Update the run's session (if any) in the run's terminal transaction."""
    if run.session_id is None:
        return
    row = await session.scalar(
        select(WorkflowAgentRuntimeSession)
        .where(WorkflowAgentRuntimeSession.id == run.session_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        return
    if row.current_run_id == run.id:
        row.current_run_id = None
    now = utcnow()
    row.updated_at = now
    if run.inputs.get("session_role") == RETIRE_ROLE:
        if outcome.status is RunStatus.SUCCEEDED:
            row.status = RuntimeSessionStatus.CLEANED
            row.cleaned_at = now
            row.cleanup_run_id = run.id
            row.session_snapshot = outcome.session_snapshot
    elif outcome.status in (RunStatus.SUCCEEDED, RunStatus.PAUSED):
        row.status = RuntimeSessionStatus.ACTIVE
        row.session_snapshot = outcome.session_snapshot
        row.backend_run_id = run.id
        row.composition_layer_specs = run.inputs.get("session_layer_specs")
    elif outcome.error_type != ErrorType.WORKER_LOST:
        row.status = RuntimeSessionStatus.CLEANED
        row.cleaned_at = now
        row.backend_run_id = run.id
    await session.flush()
    await notifier.notify_in_transaction(session, session_topic(row.id))
