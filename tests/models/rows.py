"""Small builders of valid rows, for tests that need a parent row or a duplicate.

Each builder adds the row to the session and flushes, so its id is usable at once and parents
always reach the database before their children. Keyword arguments override columns.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Agent,
    AgentConfigOperation,
    AgentConfigRevision,
    AgentConfigSnapshot,
    AgentScope,
    AgentSource,
    ApiKey,
    ApiKeyRole,
    BindingType,
    Run,
    Tenant,
    WorkflowAgentNodeBinding,
    WorkflowAgentRuntimeSession,
)
from app.schemas import AgentSoulConfig, ModelConfig, WorkflowNodeJobConfig

M = TypeVar("M")


async def _added(session: AsyncSession, row: M) -> M:
    session.add(row)
    await session.flush()
    return row


def soul_config() -> dict[str, Any]:
    config = AgentSoulConfig(model=ModelConfig(provider="test", model="test"))
    return config.model_dump(mode="json")


async def add_tenant(session: AsyncSession, **columns: Any) -> Tenant:
    columns.setdefault("name", f"tenant-{uuid.uuid4().hex[:8]}")
    return await _added(session, Tenant(**columns))


async def add_api_key(session: AsyncSession, tenant: Tenant, **columns: Any) -> ApiKey:
    secret = uuid.uuid4().hex
    columns.setdefault("key_hash", hashlib.sha256(secret.encode()).hexdigest())
    columns.setdefault("prefix", f"sk_{secret[:8]}")
    columns.setdefault("role", ApiKeyRole.RUNNER)
    return await _added(session, ApiKey(tenant_id=tenant.id, **columns))


async def add_agent(session: AsyncSession, tenant: Tenant, **columns: Any) -> Agent:
    columns.setdefault("name", "researcher")
    columns.setdefault("scope", AgentScope.ROSTER)
    columns.setdefault("source", AgentSource.AGENT_APP)
    return await _added(session, Agent(tenant_id=tenant.id, **columns))


async def add_snapshot(session: AsyncSession, agent: Agent, **columns: Any) -> AgentConfigSnapshot:
    columns.setdefault("version", 1)
    columns.setdefault("config", soul_config())
    row = AgentConfigSnapshot(tenant_id=agent.tenant_id, agent_id=agent.id, **columns)
    return await _added(session, row)


async def add_revision(
    session: AsyncSession, snapshot: AgentConfigSnapshot, **columns: Any
) -> AgentConfigRevision:
    columns.setdefault("revision", 1)
    columns.setdefault("operation", AgentConfigOperation.CREATE_VERSION)
    row = AgentConfigRevision(
        tenant_id=snapshot.tenant_id,
        agent_id=snapshot.agent_id,
        current_snapshot_id=snapshot.id,
        **columns,
    )
    return await _added(session, row)


async def add_binding(
    session: AsyncSession, agent: Agent, **columns: Any
) -> WorkflowAgentNodeBinding:
    columns.setdefault("app_id", "app-1")
    columns.setdefault("workflow_id", "workflow-1")
    columns.setdefault("workflow_version", "v1")
    columns.setdefault("node_id", "node-1")
    columns.setdefault("binding_type", BindingType.ROSTER_AGENT)
    columns.setdefault("node_job_config", WorkflowNodeJobConfig().model_dump(mode="json"))
    row = WorkflowAgentNodeBinding(tenant_id=agent.tenant_id, agent_id=agent.id, **columns)
    return await _added(session, row)


async def add_runtime_session(
    session: AsyncSession, tenant: Tenant, **columns: Any
) -> WorkflowAgentRuntimeSession:
    for column in ("app_id", "workflow_id", "workflow_run_id", "node_id", "binding_id", "agent_id"):
        columns.setdefault(column, f"{column.removesuffix('_id')}-1")
    return await _added(session, WorkflowAgentRuntimeSession(tenant_id=tenant.id, **columns))


async def add_run(session: AsyncSession, tenant: Tenant, **columns: Any) -> Run:
    columns.setdefault("composition", {"schema_version": 1, "layers": []})
    columns.setdefault("request_fingerprint", "0" * 64)
    return await _added(session, Run(tenant_id=tenant.id, **columns))
