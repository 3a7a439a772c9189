"""Workflow runs: read one, and close it (seal, cancel what is in flight, retire its sessions).

Closing is, in this order:

1. **Seal.** One write marks the workflow run `closed` (inserting its row when Strata has not
   seen it yet, so a node run that arrives after the close is refused too). From that commit
   on, every run that would occupy one of its sessions gets 409 `workflow_run_closed`
   (`app.sessions.scope`): the check holds a share lock on the same row, so a run either
   committed before the seal, and is seen by the steps below, or reads `closed`. Sealing first
   is what makes the rest converge: nothing can reactivate a session that step 3 cleans.
2. **Cancel** (`cancel_in_flight`): every agent run of the workflow run still `queued` or
   `running` is cancelled through the ordinary cancel path (`app.runs.service.cancel_run`), so
   it ends `cancelled` with one terminal event, and, having exited every layer with DELETE,
   leaves its session `cleaned`. Cleanup runs of a retire are left to finish.
3. **Retire** every session of the workflow run (a page of them, `limit`/`cursor`, as
   `POST /v1/sessions/retire`), waiting within `wait_seconds` for runs in flight.

Every step re-reads the rows, so a close is idempotent: calling it again reports the current
state (and retires what an earlier call left `still_running`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from app.models import (
    AgentConfigSnapshot,
    RunStatus,
    RuntimeSessionStatus,
    WorkflowRunAgentVersion,
    utcnow,
)
from app.runs import service as runs
from app.sessions import repository
from app.sessions.schemas import (
    WorkflowRunAgentVersionRead,
    WorkflowRunClose,
    WorkflowRunCloseReport,
    WorkflowRunRead,
    WorkflowRunRunInFlight,
    WorkflowRunSessionRead,
)
from app.sessions.service import Retirer

CANCEL_REASON = "the workflow run was closed"
_CANCEL_BATCH = 50
"""Runs cancelled per write transaction: each cancel locks one run row."""


def _not_found(workflow_run_id: str) -> NotFound:
    return NotFound(
        "workflow run not found",
        code="workflow_run_not_found",
        details={"workflow_run_id": workflow_run_id},
    )


async def get_workflow_run(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_run_id: str,
    *,
    before: uuid.UUID | None,
    limit: int,
) -> tuple[WorkflowRunRead, uuid.UUID | None]:
    """The workflow run with a page of its sessions (newest first, after `before`), the runs in
    flight on them and its fixed agent versions; the id to continue after, when there are more.
    `NotFound` (`workflow_run_not_found`) for a workflow run this tenant never ran anything in."""
    row = await repository.get_workflow_run(session, tenant_id, workflow_run_id)
    if row is None:
        raise _not_found(workflow_run_id)
    sessions = await repository.list_workflow_run_sessions(
        session, tenant_id, workflow_run_id, before=before, limit=limit + 1
    )
    page = sessions[:limit]
    in_flight = await repository.runs_in_flight(
        session, tenant_id, workflow_run_id, session_ids=[item.id for item in page]
    )
    versions = await session.execute(
        select(
            WorkflowRunAgentVersion.agent_id,
            WorkflowRunAgentVersion.snapshot_id,
            AgentConfigSnapshot.version,
            WorkflowRunAgentVersion.created_at,
        )
        .join(AgentConfigSnapshot, AgentConfigSnapshot.id == WorkflowRunAgentVersion.snapshot_id)
        .where(
            WorkflowRunAgentVersion.tenant_id == tenant_id,
            WorkflowRunAgentVersion.workflow_run_id == workflow_run_id,
        )
        .order_by(WorkflowRunAgentVersion.created_at, WorkflowRunAgentVersion.id)
    )
    read = WorkflowRunRead(
        workflow_run_id=row.workflow_run_id,
        status=row.status,
        created_at=row.created_at,
        closed_at=row.closed_at,
        sessions=[_session_read(item) for item in page],
        runs_in_flight=[
            WorkflowRunRunInFlight(
                run_id=run.id,
                status=run.status,
                purpose=run.purpose,
                session_id=run.session_id,
                node_id=run.node_id,
            )
            for run in in_flight
        ],
        agent_versions=[
            WorkflowRunAgentVersionRead(
                agent_id=version.agent_id,
                snapshot_id=version.snapshot_id,
                version=version.version,
                fixed_at=version.created_at,
            )
            for version in versions
        ],
    )
    return read, page[-1].id if len(sessions) > limit else None


def _session_read(row: Any) -> WorkflowRunSessionRead:
    return WorkflowRunSessionRead(
        session_id=row.id,
        node_id=row.node_id,
        binding_id=row.binding_id,
        agent_id=row.agent_id,
        status=row.status,
        current_run_id=row.current_run_id,
        last_run_id=row.backend_run_id,
        cleanup_run_id=row.cleanup_run_id,
        cleaned_at=row.cleaned_at,
        updated_at=row.updated_at,
    )


class WorkflowRunCloser:
    """`POST /v1/workflow-runs/{id}/close` for one request (see the module docstring)."""

    def __init__(self, retirer: Retirer) -> None:
        self.retirer = retirer
        self.db = retirer.db
        self.principal = retirer.principal

    async def close(
        self,
        workflow_run_id: str,
        request: WorkflowRunClose,
        *,
        before: uuid.UUID | None = None,
    ) -> tuple[WorkflowRunCloseReport, uuid.UUID | None]:
        """Seal, cancel (on request), retire a page of sessions; the report and the id to
        continue after, when there are more sessions."""
        tenant_id = self.principal.tenant_id
        row = await self.db.write(
            repository.close_workflow_run, tenant_id, workflow_run_id, utcnow()
        )
        cancelled = (
            await self._cancel_in_flight(workflow_run_id) if request.cancel_in_flight else []
        )
        reports, last = await self.retirer.retire_workflow_run(
            workflow_run_id, request.wait_seconds, before=before, limit=request.limit
        )
        active = await self.db.read(
            repository.count_sessions,
            tenant_id,
            workflow_run_id,
            status=RuntimeSessionStatus.ACTIVE,
        )
        report = WorkflowRunCloseReport(
            workflow_run_id=workflow_run_id,
            status=row.status,
            closed_at=row.closed_at,
            cancelled_run_ids=cancelled,
            reports=reports,
            active_sessions=active,
        )
        return report, last

    async def _cancel_in_flight(self, workflow_run_id: str) -> list[uuid.UUID]:
        """Cancel the workflow run's queued and running agent runs; the ids of those this call
        cancelled. The workflow run is sealed, so the set cannot grow meanwhile."""
        in_flight = await self.db.read(
            repository.runs_in_flight,
            self.principal.tenant_id,
            workflow_run_id,
            agent_only=True,
        )
        ids = [run.id for run in in_flight if run.status in (RunStatus.QUEUED, RunStatus.RUNNING)]
        cancelled: list[uuid.UUID] = []
        for start in range(0, len(ids), _CANCEL_BATCH):
            cancelled += await self.db.write(self._cancel_batch, ids[start : start + _CANCEL_BATCH])
        return cancelled

    async def _cancel_batch(self, session: AsyncSession, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        cancelled = []
        for run_id in ids:
            try:
                await runs.cancel_run(
                    session,
                    principal=self.principal,
                    run_id=run_id,
                    reason=CANCEL_REASON,
                    policy=self.retirer.policy,
                )
            except Conflict:  # it ended between the read and the lock: nothing to cancel
                continue
            cancelled.append(run_id)
        return cancelled
