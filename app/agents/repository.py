"""SQL for agents, config snapshots, revisions and node bindings. No commits here.

Every query takes the caller's `tenant_id` and filters by it, so a row of another tenant is
indistinguishable from a missing one. Ids are UUIDv7, so ordering by id is ordering by creation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db import dialect_insert
from app.models import (
    Agent,
    AgentConfigRevision,
    AgentConfigSnapshot,
    AgentScope,
    AgentStatus,
    WorkflowAgentNodeBinding,
    WorkflowRunAgentVersion,
    new_id,
    utcnow,
)

# --- agents --------------------------------------------------------------------------------------


async def get_agent(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, lock: bool = False
) -> Agent | None:
    """The agent, or None. `lock=True` takes its row lock (`FOR UPDATE`) until the transaction ends.

    SQLite renders no `FOR UPDATE`; there, write transactions are serialized by `BEGIN IMMEDIATE`
    (`app.db`), which gives the same guarantee. `populate_existing` refreshes an agent this
    session already loaded, so the caller sees the row as it is once the lock is held.
    """
    query = select(Agent).where(Agent.id == agent_id, Agent.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def get_active_roster_agent_by_name(
    session: AsyncSession, tenant_id: uuid.UUID, name: str
) -> Agent | None:
    return await session.scalar(
        select(Agent).where(
            Agent.tenant_id == tenant_id,
            Agent.name == name,
            Agent.scope == AgentScope.ROSTER,
            Agent.status == AgentStatus.ACTIVE,
        )
    )


async def list_agents(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    scope: AgentScope | None,
    statuses: Sequence[AgentStatus],
    name_contains: str | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[tuple[Agent, int | None]]:
    """Agents newest first, each with the version number of its active snapshot.

    `name_contains` matches case-insensitively (`lower()`: Unicode-aware on PostgreSQL, ASCII
    only on SQLite); `%` and `_` in it match themselves.
    """
    query = (
        select(Agent, AgentConfigSnapshot.version)
        .outerjoin(AgentConfigSnapshot, AgentConfigSnapshot.id == Agent.active_config_snapshot_id)
        .where(Agent.tenant_id == tenant_id)
    )
    if scope is not None:
        query = query.where(Agent.scope == scope)
    if statuses:
        query = query.where(Agent.status.in_(statuses))
    if name_contains:
        query = query.where(func.lower(Agent.name).contains(name_contains.lower(), autoescape=True))
    if before is not None:
        query = query.where(Agent.id < before)
    rows = await session.execute(query.order_by(Agent.id.desc()).limit(limit))
    return [(agent, version) for agent, version in rows]


# --- snapshots and revisions ---------------------------------------------------------------------


async def get_snapshot(
    session: AsyncSession, tenant_id: uuid.UUID, snapshot_id: uuid.UUID
) -> AgentConfigSnapshot | None:
    return await session.scalar(
        select(AgentConfigSnapshot).where(
            AgentConfigSnapshot.id == snapshot_id, AgentConfigSnapshot.tenant_id == tenant_id
        )
    )


async def get_snapshot_by_version(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID, version: int
) -> AgentConfigSnapshot | None:
    return await session.scalar(
        select(AgentConfigSnapshot).where(
            AgentConfigSnapshot.tenant_id == tenant_id,
            AgentConfigSnapshot.agent_id == agent_id,
            AgentConfigSnapshot.version == version,
        )
    )


async def list_snapshots(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
) -> list[AgentConfigSnapshot]:
    """Snapshots of the agent, highest version first, versions below `before` only."""
    query = select(AgentConfigSnapshot).where(
        AgentConfigSnapshot.tenant_id == tenant_id, AgentConfigSnapshot.agent_id == agent_id
    )
    if before is not None:
        query = query.where(AgentConfigSnapshot.version < before)
    query = query.order_by(AgentConfigSnapshot.version.desc()).limit(limit)
    return list(await session.scalars(query))


async def list_revisions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
) -> list[AgentConfigRevision]:
    """Revisions of the agent, highest number first, numbers below `before` only."""
    query = select(AgentConfigRevision).where(
        AgentConfigRevision.tenant_id == tenant_id, AgentConfigRevision.agent_id == agent_id
    )
    if before is not None:
        query = query.where(AgentConfigRevision.revision < before)
    query = query.order_by(AgentConfigRevision.revision.desc()).limit(limit)
    return list(await session.scalars(query))


async def next_version(session: AsyncSession, agent_id: uuid.UUID) -> int:
    """max(version) + 1 for the agent. Only race-free while the agent row is locked."""
    current = await session.scalar(
        select(func.max(AgentConfigSnapshot.version)).where(
            AgentConfigSnapshot.agent_id == agent_id
        )
    )
    return int(current or 0) + 1


async def next_revision(session: AsyncSession, agent_id: uuid.UUID) -> int:
    """max(revision) + 1 for the agent. Only race-free while the agent row is locked."""
    current = await session.scalar(
        select(func.max(AgentConfigRevision.revision)).where(
            AgentConfigRevision.agent_id == agent_id
        )
    )
    return int(current or 0) + 1


# --- bindings ------------------------------------------------------------------------------------


async def get_binding(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_id: str,
    workflow_version: str,
    node_id: str,
) -> WorkflowAgentNodeBinding | None:
    return await session.scalar(
        select(WorkflowAgentNodeBinding).where(
            WorkflowAgentNodeBinding.tenant_id == tenant_id,
            WorkflowAgentNodeBinding.workflow_id == workflow_id,
            WorkflowAgentNodeBinding.workflow_version == workflow_version,
            WorkflowAgentNodeBinding.node_id == node_id,
        )
    )


async def list_bindings(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_id: str, workflow_version: str
) -> list[tuple[WorkflowAgentNodeBinding, AgentConfigSnapshot | None]]:
    """A workflow version's bindings by node id, each with the snapshot it resolves to now."""
    snapshot = aliased(AgentConfigSnapshot)
    resolved_id = func.coalesce(
        WorkflowAgentNodeBinding.current_snapshot_id, Agent.active_config_snapshot_id
    )
    query = (
        select(WorkflowAgentNodeBinding, snapshot)
        .join(
            Agent,
            and_(
                Agent.id == WorkflowAgentNodeBinding.agent_id,
                Agent.tenant_id == WorkflowAgentNodeBinding.tenant_id,
            ),
        )
        .outerjoin(snapshot, snapshot.id == resolved_id)
        .where(
            WorkflowAgentNodeBinding.tenant_id == tenant_id,
            WorkflowAgentNodeBinding.workflow_id == workflow_id,
            WorkflowAgentNodeBinding.workflow_version == workflow_version,
        )
        .order_by(WorkflowAgentNodeBinding.node_id)
    )
    rows = await session.execute(query)
    return [(binding, resolved) for binding, resolved in rows]


async def delete_bindings(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_id: str, workflow_version: str
) -> None:
    """Delete every binding of a workflow version (loaded copies are not synchronized)."""
    await session.execute(
        delete(WorkflowAgentNodeBinding)
        .where(
            WorkflowAgentNodeBinding.tenant_id == tenant_id,
            WorkflowAgentNodeBinding.workflow_id == workflow_id,
            WorkflowAgentNodeBinding.workflow_version == workflow_version,
        )
        .execution_options(synchronize_session=False)
    )


# --- agent versions fixed per workflow run -------------------------------------------------------


async def fixed_snapshot_id(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_run_id: str, agent_id: uuid.UUID
) -> uuid.UUID | None:
    """The snapshot the workflow run's following bindings of the agent resolve to, if fixed."""
    snapshot_id: uuid.UUID | None = await session.scalar(
        select(WorkflowRunAgentVersion.snapshot_id).where(
            WorkflowRunAgentVersion.tenant_id == tenant_id,
            WorkflowRunAgentVersion.workflow_run_id == workflow_run_id,
            WorkflowRunAgentVersion.agent_id == agent_id,
        )
    )
    return snapshot_id


async def fix_snapshot(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_run_id: str,
    agent_id: uuid.UUID,
    snapshot_id: uuid.UUID,
) -> uuid.UUID:
    """Fix `snapshot_id` for the workflow run's following bindings of the agent unless one is
    fixed already; the snapshot that is fixed now (the first writer's)."""
    await session.execute(
        dialect_insert(session)(WorkflowRunAgentVersion)
        .values(
            id=new_id(),
            tenant_id=tenant_id,
            workflow_run_id=workflow_run_id,
            agent_id=agent_id,
            snapshot_id=snapshot_id,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "workflow_run_id", "agent_id"])
    )
    fixed = await fixed_snapshot_id(session, tenant_id, workflow_run_id, agent_id)
    assert fixed is not None  # inserted above, or by the writer the conflict waited for
    return fixed
