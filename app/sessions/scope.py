"""Binding runs to runtime sessions: the `SessionPolicy` the run manager calls.

A scope is (tenant, workflow_run_id, node_id, binding_id, agent_id). Its row points at the latest
ACTIVE snapshot (`snapshot_run_id`) and holds `current_run_id`, the one run allowed in flight.

- Creating a run on a scope (`resolve_snapshot`, then `occupy`) takes the session's latest
  snapshot as the run's incoming snapshot (by reference) and sets `current_run_id`; a second run
  while one is in flight is `session_busy` (409). The row is locked (`FOR UPDATE`; on SQLite the
  one writer serializes) and a concurrent first insert of the same scope is caught by the
  unique constraint, so exactly one of two racing requests wins.
- When a run ends (`on_run_terminal`, in the terminal transaction), see the session state
  machine in docs/ARCHITECTURE.md: `succeeded`/`paused` make its snapshot the session's, with
  the replayable layer specs. A session becomes `cleaned` only when nothing is left to release:
  a retire's cleanup run succeeded, or a failed or cancelled run exited every layer with DELETE.
  A run that did not exit the layers cleanly (never entered them, a lost or stopped worker)
  leaves the previous snapshot as the session's state.
- A layer a run closed (DELETE) starts fresh in the session's next run (`reopen_closed`).
- A run on a `cleaned` scope starts fresh: the row becomes ACTIVE again without a snapshot; an
  inline snapshot on it is refused (`session_retired`).
- A run on a scope of a *closed* workflow run is refused (409 `workflow_run_closed`).
  `resolve_snapshot` checks it early (no lock, so a 409 comes before any 422); `occupy` checks
  it again under a share lock on the workflow run's row (inserting the row, `open`, for the
  first run of a workflow run), in the transaction that occupies the session. A close updates
  that row first, so a run racing it either committed before (and the close sees and retires
  its session) or reads `closed`: no run reactivates a session that the close cleaned.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, ValidationFailed
from app.models import RunStatus, RuntimeSessionStatus, WorkflowRunStatus
from app.models.base import new_id, utcnow
from app.notifier import notify, session_topic
from app.runs.outcome import ErrorType, RunOutcome
from app.runs.policy import ResolvedSnapshot, TerminalRun
from app.runs.schemas import SessionScope
from app.runs.snapshots import holds_resources, reopen_closed
from app.sessions import repository

RETIRE_ROLE = "retire"
"""`runs.inputs["session_role"]` of a retire's cleanup run."""

_KEEPS_SESSION = (ErrorType.WORKER_LOST, ErrorType.WORKER_SHUTDOWN)


def _busy(row: Any) -> Conflict:
    return Conflict(
        "this session has a run in flight; wait for it to end",
        code="session_busy",
        details={"session_id": str(row.id), "run_id": str(row.current_run_id)},
    )


def workflow_run_closed(workflow_run_id: str) -> Conflict:
    return Conflict(
        f"workflow run {workflow_run_id!r} is closed; it accepts no new runs",
        code="workflow_run_closed",
        details={"workflow_run_id": workflow_run_id},
    )


class SessionStore:
    """Runtime sessions as seen by runs (implements `app.runs.policy.SessionPolicy`)."""

    async def resolve_snapshot(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        scope: SessionScope,
        inline_snapshot: dict[str, Any] | None,
    ) -> ResolvedSnapshot:
        """The session's latest snapshot wins; a request may repeat it inline, but an inline
        snapshot that differs from it is `session_snapshot_conflict` (422). A closed workflow run
        is `workflow_run_closed` (409)."""
        workflow_run = await repository.get_workflow_run(session, tenant_id, scope.workflow_run_id)
        if workflow_run is not None and workflow_run.status == WorkflowRunStatus.CLOSED:
            raise workflow_run_closed(scope.workflow_run_id)
        row = await repository.find_by_scope(session, tenant_id, scope)
        if row is None:
            return ResolvedSnapshot(inline_snapshot, None)
        if row.status == RuntimeSessionStatus.CLEANED:
            if inline_snapshot is not None:
                # its layers' resources were released: nothing may resume from that state
                raise ValidationFailed(
                    "this session was retired (its layers released their resources); a run on "
                    "it starts fresh: omit `session_snapshot`",
                    code="session_retired",
                    details={"field": "session_snapshot", "session_id": str(row.id)},
                )
            return ResolvedSnapshot(None, None)
        if row.current_run_id is not None:
            raise _busy(row)
        if row.snapshot_run_id is None:
            return ResolvedSnapshot(inline_snapshot, None)
        stored = await repository.snapshot_of_run(session, row.snapshot_run_id)
        snapshot = reopen_closed(stored)
        if inline_snapshot is not None and inline_snapshot not in (stored, snapshot):
            raise ValidationFailed(
                "the request carries a session snapshot that differs from the session's; "
                "omit it to resume the session",
                code="session_snapshot_conflict",
                details={"field": "session_snapshot", "session_id": str(row.id)},
            )
        return ResolvedSnapshot(snapshot, row.snapshot_run_id)

    async def occupy(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        scope: SessionScope,
        *,
        run_id: uuid.UUID,
        expected: ResolvedSnapshot,
    ) -> uuid.UUID:
        now = utcnow()
        status = await repository.hold_workflow_run(session, tenant_id, scope.workflow_run_id, now)
        if status == WorkflowRunStatus.CLOSED:
            raise workflow_run_closed(scope.workflow_run_id)
        row = await repository.lock_by_scope(session, tenant_id, scope)
        if row is None:
            new_session = new_id()
            try:
                async with session.begin_nested():
                    await repository.add(
                        session,
                        {
                            "id": new_session,
                            "tenant_id": tenant_id,
                            "app_id": scope.app_id,
                            "workflow_id": scope.workflow_id,
                            "workflow_run_id": scope.workflow_run_id,
                            "node_id": scope.node_id,
                            "node_execution_id": scope.node_execution_id,
                            "binding_id": scope.binding_id,
                            "agent_id": scope.agent_id,
                            "agent_config_snapshot_id": scope.agent_config_snapshot_id,
                            "current_run_id": run_id,
                            "status": RuntimeSessionStatus.ACTIVE,
                            "created_at": now,
                            "updated_at": now,
                        },
                    )
                return new_session
            except IntegrityError:  # a concurrent request created it first
                row = await repository.lock_by_scope(session, tenant_id, scope)
                if row is None:
                    raise
        if row.current_run_id is not None:
            raise _busy(row)
        values: dict[str, Any] = {}
        if row.status == RuntimeSessionStatus.CLEANED:
            values.update(
                status=RuntimeSessionStatus.ACTIVE,
                snapshot_run_id=None,
                cleaned_at=None,
                cleanup_run_id=None,
            )
        elif row.snapshot_run_id != expected.source_run_id:
            raise _busy(row)  # it changed since the request was validated: a run just ended
        await repository.change(
            session,
            row.id,
            node_execution_id=scope.node_execution_id,
            agent_config_snapshot_id=scope.agent_config_snapshot_id,
            app_id=scope.app_id,
            workflow_id=scope.workflow_id,
            current_run_id=run_id,
            updated_at=now,
            **values,
        )
        session_id: uuid.UUID = row.id
        return session_id

    async def on_run_terminal(
        self, session: AsyncSession, run: TerminalRun, outcome: RunOutcome
    ) -> None:
        row = await repository.lock(session, run.session_id)
        if row is None:
            return
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if row.current_run_id == run.id:
            values["current_run_id"] = None
        snapshot = outcome.session_snapshot
        if run.session_role == RETIRE_ROLE:
            if outcome.status is RunStatus.SUCCEEDED:
                values.update(
                    status=RuntimeSessionStatus.CLEANED,
                    cleaned_at=now,
                    cleanup_run_id=run.id,
                    snapshot_run_id=run.id,
                )
        elif outcome.status in (RunStatus.SUCCEEDED, RunStatus.PAUSED):
            values.update(
                status=RuntimeSessionStatus.ACTIVE,
                snapshot_run_id=run.id,
                backend_run_id=run.id,
                composition_layer_specs=run.layer_specs,
            )
        elif outcome.error_type in _KEEPS_SESSION or snapshot is None:
            # The layers did not exit cleanly through this run (a lost or stopped worker, a run
            # cancelled or refused before it entered them): the previous snapshot is still what
            # holds resources, and stays the session's state until a retire releases it.
            pass
        elif holds_resources(snapshot):
            # e.g. a cancel that landed while the run committed: its layers were suspended
            values.update(
                status=RuntimeSessionStatus.ACTIVE,
                snapshot_run_id=run.id,
                backend_run_id=run.id,
                composition_layer_specs=run.layer_specs,
            )
        else:
            # the failed or cancelled run exited every layer with DELETE: nothing is held
            values.update(
                status=RuntimeSessionStatus.CLEANED,
                cleaned_at=now,
                snapshot_run_id=run.id,
                backend_run_id=run.id,
            )
        await repository.change(session, row.id, **values)
        notify(session, session_topic(row.id))
