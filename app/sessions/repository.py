"""SQL for runtime sessions. No commits here: callers own the transaction.

A session's latest snapshot is stored once, on the run that produced it (`snapshot_run_id`);
reads that return a session join it back in as `session_snapshot`.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Run, RuntimeSessionStatus, WorkflowAgentRuntimeSession
from app.runs.schemas import SessionScope

sessions = cast(Table, WorkflowAgentRuntimeSession.__table__)
runs = cast(Table, Run.__table__)

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
