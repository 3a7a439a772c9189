"""SQL for runtime sessions and workflow runs. No commits here: callers own the transaction.

A session's latest snapshot is stored once, on the run that produced it (`snapshot_run_id`);
reads that return a session join it back in as `session_snapshot`.

Workflow-run rows are written with `INSERT … ON CONFLICT` (PostgreSQL's and SQLite's own
constructs, picked by the session's dialect), so concurrent first writers never fail on the
unique key and never need a retry.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import (
    TERMINAL_RUN_STATUSES,
    Run,
    RunPurpose,
    RunStatus,
    RuntimeSessionStatus,
    WorkflowAgentRuntimeSession,
    WorkflowRun,
    WorkflowRunStatus,
    new_id,
)
from app.runs.schemas import SessionScope

sessions = cast(Table, WorkflowAgentRuntimeSession.__table__)
runs = cast(Table, Run.__table__)
workflow_runs = cast(Table, WorkflowRun.__table__)

_SNAPSHOT = runs.alias("snapshot_run")
_WITH_SNAPSHOT = select(sessions, _SNAPSHOT.c.session_snapshot).select_from(
    sessions.outerjoin(_SNAPSHOT, _SNAPSHOT.c.id == sessions.c.snapshot_run_id)
)


def scope_filter(tenant_id: uuid.UUID, scope: SessionScope) -> Any:
    return (
        (sessions.c.tenant_id == tenant_id)
        & (sessions.c.workflow_run_id == scope.workflow_run_id)
        & (sessions.c.node_id == scope.node_id)
        & (sessions.c.binding_id == scope.binding_id)
        & (sessions.c.agent_id == scope.agent_id)
    )


async def find_by_scope(
    session: AsyncSession, tenant_id: uuid.UUID, scope: SessionScope
) -> Any | None:
    result = await session.execute(select(sessions).where(scope_filter(tenant_id, scope)))
    return result.first()


async def lock_by_scope(
    session: AsyncSession, tenant_id: uuid.UUID, scope: SessionScope
) -> Any | None:
    """The scope's row, locked (PostgreSQL; SQLite's one writer serializes anyway)."""
    result = await session.execute(
        select(sessions).where(scope_filter(tenant_id, scope)).with_for_update()
    )
    return result.first()


async def lock(session: AsyncSession, session_id: uuid.UUID) -> Any | None:
    result = await session.execute(
        select(sessions).where(sessions.c.id == session_id).with_for_update()
    )
    return result.first()


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(sessions), values)


async def change(session: AsyncSession, session_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(sessions).where(sessions.c.id == session_id).values(**values))


async def snapshot_of_run(session: AsyncSession, run_id: uuid.UUID) -> dict[str, Any] | None:
    snapshot: dict[str, Any] | None = await session.scalar(
        select(runs.c.session_snapshot).where(runs.c.id == run_id)
    )
    return snapshot


async def get(session: AsyncSession, tenant_id: uuid.UUID, session_id: uuid.UUID) -> Any | None:
    """The tenant's session with its `session_snapshot`, or None."""
    result = await session.execute(
        _WITH_SNAPSHOT.where(sessions.c.id == session_id, sessions.c.tenant_id == tenant_id)
    )
    return result.first()


async def list_sessions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    workflow_run_id: str | None,
    node_id: str | None = None,
    status: RuntimeSessionStatus | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[Any]:
    """Newest first, with their `session_snapshot`.

    Indexes: `(tenant_id, workflow_run_id, status)` for a workflow run (and its status),
    `(tenant_id, node_id)` for a node alone.
    """
    query = _WITH_SNAPSHOT.where(sessions.c.tenant_id == tenant_id)
    if workflow_run_id is not None:
        query = query.where(sessions.c.workflow_run_id == workflow_run_id)
    if node_id is not None:
        query = query.where(sessions.c.node_id == node_id)
    if status is not None:
        query = query.where(sessions.c.status == status)
    if before is not None:
        query = query.where(sessions.c.id < before)
    result = await session.execute(query.order_by(sessions.c.id.desc()).limit(limit))
    return list(result.all())


# --- workflow runs ------------------------------------------------------------------------------


def _workflow_run_filter(tenant_id: uuid.UUID, workflow_run_id: str) -> Any:
    return (workflow_runs.c.tenant_id == tenant_id) & (
        workflow_runs.c.workflow_run_id == workflow_run_id
    )


async def get_workflow_run(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_run_id: str
) -> Any | None:
    result = await session.execute(
        select(workflow_runs).where(_workflow_run_filter(tenant_id, workflow_run_id))
    )
    return result.first()


async def hold_workflow_run(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_run_id: str, now: datetime
) -> WorkflowRunStatus:
    """The workflow run's status, its row share-locked until the transaction ends (inserted
    `open` when missing).

    The share lock is what makes a close atomic with the runs it refuses: a close updates the
    row, so it waits for every transaction that holds the lock (the runs it must see), and a run
    that comes after it waits for the close to commit and then reads `closed`. SQLite's one
    writer serializes both anyway (`FOR SHARE` is not rendered there).
    """
    locked = select(workflow_runs.c.status).where(_workflow_run_filter(tenant_id, workflow_run_id))
    status: WorkflowRunStatus | None = await session.scalar(locked.with_for_update(read=True))
    if status is not None:
        return status
    await session.execute(
        dialect_insert(session)(workflow_runs)
        .values(
            id=new_id(),
            tenant_id=tenant_id,
            workflow_run_id=workflow_run_id,
            status=WorkflowRunStatus.OPEN,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "workflow_run_id"])
    )
    inserted: WorkflowRunStatus | None = await session.scalar(locked.with_for_update(read=True))
    assert inserted is not None  # inserted above, or by the writer the conflict waited for
    return inserted


async def close_workflow_run(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_run_id: str, now: datetime
) -> Any:
    """Mark the workflow run closed (inserting it when Strata has not seen it yet); the row.
    An already closed one keeps its `closed_at`."""
    statement = dialect_insert(session)(workflow_runs).values(
        id=new_id(),
        tenant_id=tenant_id,
        workflow_run_id=workflow_run_id,
        status=WorkflowRunStatus.CLOSED,
        closed_at=now,
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "workflow_run_id"],
            set_={"status": WorkflowRunStatus.CLOSED, "closed_at": now, "updated_at": now},
            where=workflow_runs.c.status == WorkflowRunStatus.OPEN,
        )
    )
    row = await get_workflow_run(session, tenant_id, workflow_run_id)
    assert row is not None
    return row


_IN_FLIGHT = [status for status in RunStatus if status not in TERMINAL_RUN_STATUSES]


async def runs_in_flight(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_run_id: str,
    *,
    session_ids: Sequence[uuid.UUID] | None = None,
    agent_only: bool = False,
) -> list[Any]:
    """The workflow run's runs that are not terminal (`id`, `status`, `purpose`, `session_id`,
    `node_id`), oldest first; only those of `session_ids` when given; without cleanup runs when
    `agent_only`."""
    query = (
        select(runs.c.id, runs.c.status, runs.c.purpose, runs.c.session_id, sessions.c.node_id)
        .select_from(runs.join(sessions, sessions.c.id == runs.c.session_id))
        .where(
            sessions.c.tenant_id == tenant_id,
            sessions.c.workflow_run_id == workflow_run_id,
            runs.c.status.in_(_IN_FLIGHT),
        )
        .order_by(runs.c.id)
    )
    if session_ids is not None:
        query = query.where(runs.c.session_id.in_(session_ids))
    if agent_only:
        query = query.where(runs.c.purpose == RunPurpose.AGENT)
    result = await session.execute(query)
    return list(result.all())


async def list_workflow_run_sessions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_run_id: str,
    *,
    before: uuid.UUID | None,
    limit: int,
) -> list[Any]:
    """The workflow run's sessions, newest first, without their snapshots."""
    query = select(sessions).where(
        sessions.c.tenant_id == tenant_id, sessions.c.workflow_run_id == workflow_run_id
    )
    if before is not None:
        query = query.where(sessions.c.id < before)
    result = await session.execute(query.order_by(sessions.c.id.desc()).limit(limit))
    return list(result.all())


async def count_sessions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_run_id: str,
    *,
    status: RuntimeSessionStatus | None = None,
) -> int:
    query = (
        select(func.count())
        .select_from(sessions)
        .where(sessions.c.tenant_id == tenant_id, sessions.c.workflow_run_id == workflow_run_id)
    )
    if status is not None:
        query = query.where(sessions.c.status == status)
    count: int = await session.scalar(query) or 0
    return count
