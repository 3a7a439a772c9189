"""Workflow node bindings: which agent, and which of its snapshots, a workflow node runs.

A binding is addressed by (workflow_id, workflow_version, node_id) within the caller's tenant.

- `roster_agent` bindings name an active roster agent of the tenant. `snapshot_id` pins one of
  its snapshots; null follows the agent's active snapshot, so saving a new version of a roster
  agent changes what every following node runs.
- `inline_agent` bindings own a workflow-only agent. The first PUT creates it (source
  `workflow`, version 1); a later PUT of the same binding gives it a new version
  (`save_current_version`) when the config differs, and only renames it otherwise. An inline
  binding always pins the snapshot its PUT wrote. That is what lets `copy` publish a draft
  verbatim: the published version and the draft share the inline agent, but each pins its own
  snapshot, so editing the draft never changes the published version.
- A binding may not start pointing at an archived agent (409 `agent_archived`), but a binding
  that already does keeps resolving: archiving never touches bindings. `copy` carries bindings to
  archived agents forward for the same reason.

`resolve_binding` is what the node-run builder calls: the binding, its agent and the effective
snapshot (the pin, or the agent's active snapshot).
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents.checks import check_agent_config
from app.agents.schemas import BindingList, BindingPut, BindingRead, BindingsCopy, dump_config
from app.agents.service import (
    active_snapshot,
    actor,
    agent_archived,
    append_snapshot,
    get_agent_row,
    insert_agent,
)
from app.errors import Conflict, NotFound, ValidationFailed
from app.keys import Principal
from app.layers import LayerRegistry
from app.models import (
    Agent,
    AgentConfigOperation,
    AgentConfigSnapshot,
    AgentScope,
    AgentSource,
    AgentStatus,
    BindingType,
    WorkflowAgentNodeBinding,
)
from app.schemas import AgentSoulConfig, WorkflowNodeJobConfig
from app.schemas.agent_config import load_job_config, load_soul_config


class NodeAddress(NamedTuple):
    """Where a binding lives: a node of one version of a workflow."""

    workflow_id: str
    workflow_version: str
    node_id: str


class ResolvedBinding(NamedTuple):
    """A binding with the agent and the config snapshot a node run uses."""

    binding: WorkflowAgentNodeBinding
    agent: Agent
    snapshot: AgentConfigSnapshot

    def soul_config(self) -> AgentSoulConfig:
        return load_soul_config(self.snapshot.config)

    def job_config(self) -> WorkflowNodeJobConfig:
        return load_job_config(self.binding.node_job_config)


def _binding_not_found(address: NodeAddress) -> NotFound:
    return NotFound(
        "no agent is bound to this workflow node",
        code="binding_not_found",
        details=address._asdict(),
    )


async def resolve_binding(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_id: str,
    workflow_version: str,
    node_id: str,
) -> ResolvedBinding:
    """The node's binding, its agent, and the effective snapshot (pinned, else the active one).

    Works for archived agents too (existing bindings keep working). Reads only. Raises
    `NotFound` `binding_not_found` when the node has no binding in this tenant.
    """
    address = NodeAddress(workflow_id, workflow_version, node_id)
    binding = await repository.get_binding(session, tenant_id, *address)
    if binding is None:
        raise _binding_not_found(address)
    agent = await get_agent_row(session, tenant_id, binding.agent_id)
    if binding.current_snapshot_id is None:
        return ResolvedBinding(binding, agent, await active_snapshot(session, agent))
    snapshot = await repository.get_snapshot(session, tenant_id, binding.current_snapshot_id)
    if snapshot is None:  # impossible through the API: the pin is a foreign key
        raise NotFound("the pinned snapshot does not exist", code="agent_snapshot_not_found")
    return ResolvedBinding(binding, agent, snapshot)


async def _read(session: AsyncSession, binding: WorkflowAgentNodeBinding) -> BindingRead:
    resolved = await resolve_binding(
        session, binding.tenant_id, binding.workflow_id, binding.workflow_version, binding.node_id
    )
    return BindingRead.from_row(binding, resolved.snapshot)


async def get_binding(
    session: AsyncSession, principal: Principal, address: NodeAddress
) -> BindingRead:
    """The binding with its resolved snapshot; `binding_not_found` (404)."""
    binding = await repository.get_binding(session, principal.tenant_id, *address)
    if binding is None:
        raise _binding_not_found(address)
    return await _read(session, binding)


async def list_bindings(
    session: AsyncSession, principal: Principal, workflow_id: str, workflow_version: str
) -> BindingList:
    """Every binding of a workflow version (possibly none), by node id."""
    rows = await repository.list_bindings(
        session, principal.tenant_id, workflow_id, workflow_version
    )
    return BindingList(items=[BindingRead.from_row(binding, snap) for binding, snap in rows])


async def _roster_target(
    session: AsyncSession,
    principal: Principal,
    request: BindingPut,
    existing: WorkflowAgentNodeBinding | None,
) -> tuple[Agent, uuid.UUID | None]:
    """The roster agent and pin a `roster_agent` PUT asks for, checked."""
    assert request.agent_id is not None  # BindingPut's validator
    agent = await get_agent_row(session, principal.tenant_id, request.agent_id)
    if agent.scope is not AgentScope.ROSTER:
        raise ValidationFailed(
            "a roster_agent binding needs a roster agent; this one is workflow-only",
            code="agent_not_in_roster",
            details={"agent_id": str(agent.id)},
        )
    already_bound = existing is not None and existing.agent_id == agent.id
    if agent.status is AgentStatus.ARCHIVED and not already_bound:
        raise agent_archived(agent)
    if request.snapshot_id is not None:
        snapshot = await repository.get_snapshot(session, principal.tenant_id, request.snapshot_id)
        if snapshot is None or snapshot.agent_id != agent.id:
            raise ValidationFailed(
                "snapshot_id is not a snapshot of this agent",
                code="snapshot_not_of_agent",
                details={"agent_id": str(agent.id), "snapshot_id": str(request.snapshot_id)},
            )
    return agent, request.snapshot_id


async def _inline_target(
    session: AsyncSession,
    principal: Principal,
    address: NodeAddress,
    request: BindingPut,
    existing: WorkflowAgentNodeBinding | None,
) -> tuple[Agent, uuid.UUID]:
    """The inline agent of the binding, created or updated, and the snapshot to pin."""
    spec = request.agent
    assert spec is not None  # BindingPut's validator
    config = dump_config(spec.config)
    agent = None
    if existing is not None and existing.binding_type is BindingType.INLINE_AGENT:
        agent = await get_agent_row(session, principal.tenant_id, existing.agent_id, lock=True)
        if agent.scope is not AgentScope.WORKFLOW_ONLY or agent.status is AgentStatus.ARCHIVED:
            agent = None  # promoted to the roster or archived: no longer this node's own agent
    if agent is None:
        new_agent = Agent(
            tenant_id=principal.tenant_id,
            name=spec.name,
            description=spec.description,
            icon_type=spec.icon_type,
            icon=spec.icon,
            icon_background=spec.icon_background,
            scope=AgentScope.WORKFLOW_ONLY,
            source=AgentSource.WORKFLOW,
            app_id=request.app_id,
            workflow_id=address.workflow_id,
            workflow_node_id=address.node_id,
            status=AgentStatus.ACTIVE,
            created_by=actor(principal),
            updated_by=actor(principal),
        )
        saved = await insert_agent(
            session,
            new_agent,
            config,
            operation=AgentConfigOperation.CREATE_VERSION,
            previous_snapshot_id=None,
            summary=spec.summary,
            version_note=spec.version_note,
        )
        return saved.agent, saved.snapshot.id

    assert existing is not None
    for field in ("name", "description", "icon_type", "icon", "icon_background"):
        setattr(agent, field, getattr(spec, field))
    agent.updated_by = actor(principal)
    pinned_id = existing.current_snapshot_id or agent.active_config_snapshot_id
    pinned = (
        await repository.get_snapshot(session, principal.tenant_id, pinned_id)
        if pinned_id is not None
        else None
    )
    if pinned is not None and pinned.agent_id == agent.id and pinned.config == config:
        await session.flush()
        return agent, pinned.id
    previous = await active_snapshot(session, agent)
    saved = await append_snapshot(
        session,
        agent,
        config,
        operation=AgentConfigOperation.SAVE_CURRENT_VERSION,
        previous_snapshot_id=previous.id,
        summary=spec.summary,
        version_note=spec.version_note,
        created_by=actor(principal),
    )
    return agent, saved.snapshot.id


def _apply(
    binding: WorkflowAgentNodeBinding,
    request: BindingPut,
    agent: Agent,
    pin: uuid.UUID | None,
    principal: Principal,
) -> None:
    binding.app_id = request.app_id
    binding.binding_type = request.binding_type
    binding.agent_id = agent.id
    binding.current_snapshot_id = pin
    binding.node_job_config = dump_config(request.node_job_config)
    binding.updated_by = actor(principal)


async def put_binding(
    session: AsyncSession,
    principal: Principal,
    address: NodeAddress,
    request: BindingPut,
    registry: LayerRegistry,
) -> tuple[BindingRead, bool]:
    """Create or replace the node's binding; returns (binding, created).

    Raises `agent_not_found` (404), `agent_archived` (409), `agent_not_in_roster` and
    `snapshot_not_of_agent` (422), and, from an inline agent's save, only the save-time checks
    of its config (422, `app.agents.checks`, with `details.field` under `agent.config`): inline
    agents are workflow-only, so their names never conflict.
    """
    if request.agent is not None:
        check_agent_config(
            request.agent.config,
            registry,
            tenant_id=str(principal.tenant_id),
            field="agent.config",
        )
    existing = await repository.get_binding(session, principal.tenant_id, *address)
    if request.binding_type is BindingType.ROSTER_AGENT:
        agent, pin = await _roster_target(session, principal, request, existing)
    else:
        agent, inline_pin = await _inline_target(session, principal, address, request, existing)
        pin = inline_pin
    if existing is not None:
        _apply(existing, request, agent, pin, principal)
        await session.flush()
        return await _read(session, existing), False

    binding = WorkflowAgentNodeBinding(
        tenant_id=principal.tenant_id,
        workflow_id=address.workflow_id,
        workflow_version=address.workflow_version,
        node_id=address.node_id,
        created_by=actor(principal),
    )
    _apply(binding, request, agent, pin, principal)
    await session.flush()  # flush the agent's changes before the SAVEPOINT (see below)
    try:
        async with session.begin_nested():
            session.add(binding)
            await session.flush()
    except IntegrityError:
        # A concurrent PUT created the binding first (PostgreSQL): this PUT replaces it.
        raced = await repository.get_binding(session, principal.tenant_id, *address)
        if raced is None:
            raise
        _apply(raced, request, agent, pin, principal)
        await session.flush()
        return await _read(session, raced), False
    return await _read(session, binding), True


async def delete_binding(session: AsyncSession, principal: Principal, address: NodeAddress) -> None:
    """Remove the node's binding; its agent is left as it is. `binding_not_found` (404)."""
    binding = await repository.get_binding(session, principal.tenant_id, *address)
    if binding is None:
        raise _binding_not_found(address)
    await session.delete(binding)
    await session.flush()


def _copied_pin(
    binding: WorkflowAgentNodeBinding, resolved: AgentConfigSnapshot | None, *, pin: bool
) -> uuid.UUID | None:
    if binding.current_snapshot_id is not None or not pin or resolved is None:
        return binding.current_snapshot_id
    return resolved.id


async def copy_bindings(
    session: AsyncSession,
    principal: Principal,
    workflow_id: str,
    workflow_version: str,
    request: BindingsCopy,
) -> BindingList:
    """Copy every binding of a workflow version to `request.target_version`, all or nothing.

    Copies keep the agent, pin, type, app id and job config; with `pin_followers`, a binding
    that follows its agent is pinned in the copy to the snapshot it resolves to now (the agent's
    active one). A target version that already has bindings is 409 `bindings_exist` unless
    `replace`, which deletes them first (an empty source then leaves the target empty). Copying
    a version onto itself is 422 `same_workflow_version`.
    """
    target = request.target_version
    if target == workflow_version:
        raise ValidationFailed(
            "the target version is the source version", code="same_workflow_version"
        )
    tenant_id = principal.tenant_id
    sources = await repository.list_bindings(session, tenant_id, workflow_id, workflow_version)
    existing = await repository.list_bindings(session, tenant_id, workflow_id, target)
    exists_error = Conflict(
        f"workflow version {target!r} already has bindings; pass replace=true to overwrite",
        code="bindings_exist",
        details={"target_version": target, "count": len(existing)},
    )
    if existing and not request.replace:
        raise exists_error
    if existing:
        await repository.delete_bindings(session, tenant_id, workflow_id, target)
        for binding, _ in existing:
            session.expunge(binding)
    copies = [
        WorkflowAgentNodeBinding(
            tenant_id=tenant_id,
            app_id=binding.app_id,
            workflow_id=workflow_id,
            workflow_version=target,
            node_id=binding.node_id,
            binding_type=binding.binding_type,
            agent_id=binding.agent_id,
            current_snapshot_id=_copied_pin(binding, resolved, pin=request.pin_followers),
            node_job_config=binding.node_job_config,
            created_by=actor(principal),
            updated_by=actor(principal),
        )
        for binding, resolved in sources
    ]
    try:
        async with session.begin_nested():
            session.add_all(copies)
            await session.flush()
    except IntegrityError:
        # A concurrent PUT or copy wrote a target binding after the check (PostgreSQL).
        raise exists_error from None
    return BindingList(
        items=[
            BindingRead.from_row(copy, resolved)
            for copy, (_, resolved) in zip(copies, sources, strict=True)
        ]
    )
