"""Agent use cases (the roster) and the building blocks every save uses.

Functions take the request's session and never commit (the request dependency does); they raise
`AppError`s before the first write whenever the request cannot succeed.

Names. Active roster agents have unique names per tenant (a partial unique index). Inserts and
renames run inside a SAVEPOINT; a unique violation that a re-read attributes to the name becomes
409 `agent_name_taken`, so a concurrent create of the same name is reported correctly too.

Numbering. `append_snapshot` gives a save the agent's next version and revision numbers
(`max + 1`); its callers hold the agent row lock (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite
every write transaction is serialized by `BEGIN IMMEDIATE`) or inserted the agent in the same
transaction. The unique constraints on `(agent_id, version)` and `(agent_id, revision)` remain the
last line of defence: a violation there is a bug and surfaces as a 500.

Archived agents are read-only (409 `agent_archived` for edits and saves) but remain readable,
copyable (`save-as`) and runnable through their existing bindings. `created_by`/`updated_by`/
`archived_by` hold the id of the API key that made the change.

The version operations (saves, save-as, save-to-roster, history) are in `app.agents.versions`.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents.checks import check_agent_config
from app.agents.schemas import (
    AgentCreate,
    AgentPage,
    AgentRead,
    AgentUpdate,
    RevisionRead,
    SaveResult,
    VersionRead,
    dump_config,
)
from app.errors import BadRequest, Conflict, NotFound
from app.keys import Principal
from app.layers import LayerRegistry
from app.models import (
    Agent,
    AgentConfigOperation,
    AgentConfigRevision,
    AgentConfigSnapshot,
    AgentScope,
    AgentStatus,
)
from app.models.base import utcnow


def actor(principal: Principal) -> str:
    """What the `*_by` audit columns record for this caller: its API key id."""
    return str(principal.api_key_id)


def agent_not_found() -> NotFound:
    return NotFound("agent not found", code="agent_not_found")


def agent_archived(agent: Agent) -> Conflict:
    return Conflict(
        "the agent is archived", code="agent_archived", details={"agent_id": str(agent.id)}
    )


def name_taken(name: str) -> Conflict:
    return Conflict(
        f"an active roster agent named {name!r} already exists",
        code="agent_name_taken",
        details={"name": name},
    )


@dataclass(frozen=True)
class Saved:
    """The rows one save wrote or moved to."""

    agent: Agent
    snapshot: AgentConfigSnapshot
    revision: AgentConfigRevision

    def read(self) -> SaveResult:
        return SaveResult(
            agent=AgentRead.from_row(self.agent, self.snapshot.version),
            version=VersionRead.from_row(self.snapshot, self.agent.active_config_snapshot_id),
            revision=RevisionRead.from_row(self.revision),
        )


# --- shared building blocks (also used by the bindings service) ----------------------------------


async def get_agent_row(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, lock: bool = False
) -> Agent:
    """The tenant's agent (row-locked when `lock`); `agent_not_found` otherwise."""
    agent = await repository.get_agent(session, tenant_id, agent_id, lock=lock)
    if agent is None:
        raise agent_not_found()
    return agent


async def editable_agent(session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
    agent = await get_agent_row(session, tenant_id, agent_id, lock=True)
    if agent.status is AgentStatus.ARCHIVED:
        raise agent_archived(agent)
    return agent


async def holds_roster_name(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> bool:
    return await repository.get_active_roster_agent_by_name(session, tenant_id, name) is not None


async def insert_agent(
    session: AsyncSession,
    agent: Agent,
    config: dict[str, Any],
    *,
    operation: AgentConfigOperation,
    previous_snapshot_id: uuid.UUID | None,
    summary: str | None,
    version_note: str | None,
) -> Saved:
    """Insert a new agent with its version 1 and revision 1; `agent_name_taken` on a conflict."""
    # Read before the SAVEPOINT: its rollback expunges or expires the rows it touched.
    tenant_id, name, roster = agent.tenant_id, agent.name, agent.scope is AgentScope.ROSTER
    try:
        async with session.begin_nested():
            session.add(agent)
            await session.flush()
    except IntegrityError:
        if roster and await holds_roster_name(session, tenant_id, name):
            raise name_taken(name) from None
        raise
    return await append_snapshot(
        session,
        agent,
        config,
        operation=operation,
        previous_snapshot_id=previous_snapshot_id,
        summary=summary,
        version_note=version_note,
        created_by=agent.created_by,
    )


async def append_snapshot(
    session: AsyncSession,
    agent: Agent,
    config: dict[str, Any],
    *,
    operation: AgentConfigOperation,
    previous_snapshot_id: uuid.UUID | None,
    summary: str | None,
    version_note: str | None,
    created_by: str | None,
) -> Saved:
    """Insert the next snapshot and revision of `agent` and make the snapshot active.

    The caller holds the agent's row lock, or inserted the agent in this transaction.
    """
    snapshot = AgentConfigSnapshot(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        version=await repository.next_version(session, agent.id),
        config=config,
        summary=summary,
        version_note=version_note,
        created_by=created_by,
    )
    session.add(snapshot)
    await session.flush()  # the revision's foreign keys need the snapshot row
    revision = AgentConfigRevision(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        previous_snapshot_id=previous_snapshot_id,
        current_snapshot_id=snapshot.id,
        revision=await repository.next_revision(session, agent.id),
        operation=operation,
        summary=summary,
        version_note=version_note,
        created_by=created_by,
    )
    session.add(revision)
    agent.active_config_snapshot_id = snapshot.id
    agent.updated_by = created_by
    await session.flush()
    return Saved(agent, snapshot, revision)


async def active_snapshot(session: AsyncSession, agent: Agent) -> AgentConfigSnapshot:
    """The agent's active snapshot (every agent has one from the moment it is created)."""
    snapshot = None
    if agent.active_config_snapshot_id is not None:
        snapshot = await repository.get_snapshot(
            session, agent.tenant_id, agent.active_config_snapshot_id
        )
    if snapshot is None or snapshot.agent_id != agent.id:
        raise NotFound(
            "the agent has no active config snapshot",
            code="agent_snapshot_not_found",
            details={"agent_id": str(agent.id)},
        )
    return snapshot


async def _agent_read(session: AsyncSession, agent: Agent) -> AgentRead:
    snapshot = await active_snapshot(session, agent)
    return AgentRead.from_row(agent, snapshot.version)


# --- agents --------------------------------------------------------------------------------------


async def create_agent(
    session: AsyncSession, principal: Principal, request: AgentCreate, registry: LayerRegistry
) -> AgentRead:
    """Create an agent, its version 1 and a `create_version` revision 1.

    Raises `ValidationFailed` (422) when a node run of the config would be refused
    (`app.agents.checks`), and `agent_name_taken` (409) when a roster agent's name is held by an
    active roster agent.
    """
    check_agent_config(request.config, registry, tenant_id=str(principal.tenant_id))
    agent = Agent(
        tenant_id=principal.tenant_id,
        name=request.name,
        description=request.description,
        icon_type=request.icon_type,
        icon=request.icon,
        icon_background=request.icon_background,
        scope=request.scope,
        source=request.source,
        app_id=request.app_id,
        workflow_id=request.workflow_id,
        workflow_node_id=request.workflow_node_id,
        status=AgentStatus.ACTIVE,
        created_by=actor(principal),
        updated_by=actor(principal),
    )
    saved = await insert_agent(
        session,
        agent,
        dump_config(request.config),
        operation=AgentConfigOperation.CREATE_VERSION,
        previous_snapshot_id=None,
        summary=request.summary,
        version_note=request.version_note,
    )
    return AgentRead.from_row(saved.agent, saved.snapshot.version)


async def get_agent(session: AsyncSession, principal: Principal, agent_id: uuid.UUID) -> AgentRead:
    return await _agent_read(session, await get_agent_row(session, principal.tenant_id, agent_id))


def encode_cursor(agent_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(agent_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise BadRequest("cursor is not one this API returned", code="invalid_cursor") from None


async def list_agents(
    session: AsyncSession,
    principal: Principal,
    *,
    scope: AgentScope | None,
    statuses: list[AgentStatus],
    name_contains: str | None,
    cursor: str | None,
    limit: int,
) -> AgentPage:
    """A page of the tenant's agents, newest first; `invalid_cursor` (400) for a bad cursor."""
    rows = await repository.list_agents(
        session,
        principal.tenant_id,
        scope=scope,
        statuses=statuses,
        name_contains=name_contains,
        before=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    return AgentPage(
        items=[AgentRead.from_row(agent, version) for agent, version in page],
        next_cursor=encode_cursor(page[-1][0].id) if len(rows) > limit else None,
    )


async def update_agent(
    session: AsyncSession, principal: Principal, agent_id: uuid.UUID, request: AgentUpdate
) -> AgentRead:
    """Change presentation fields. 409 `agent_archived`, 409 `agent_name_taken` on a rename."""
    agent = await editable_agent(session, principal.tenant_id, agent_id)
    changes = request.model_dump(include=request.model_fields_set)
    name = changes.get("name", agent.name)
    roster = agent.scope is AgentScope.ROSTER
    try:
        # The changes are made inside the SAVEPOINT: `begin_nested` flushes pending changes
        # first, and a violation outside it would abort the whole transaction on PostgreSQL.
        async with session.begin_nested():
            for field, value in changes.items():
                setattr(agent, field, value)
            agent.updated_by = actor(principal)
            await session.flush()
    except IntegrityError:
        if roster and await holds_roster_name(session, principal.tenant_id, name):
            raise name_taken(name) from None
        raise
    return await _agent_read(session, agent)


async def archive_agent(
    session: AsyncSession, principal: Principal, agent_id: uuid.UUID
) -> AgentRead:
    """Archive the agent: its roster name becomes free; bindings to it keep working. Idempotent."""
    agent = await get_agent_row(session, principal.tenant_id, agent_id, lock=True)
    if agent.status is not AgentStatus.ARCHIVED:
        agent.status = AgentStatus.ARCHIVED
        agent.archived_at = utcnow()
        agent.archived_by = actor(principal)
        agent.updated_by = actor(principal)
        await session.flush()
    return await _agent_read(session, agent)
