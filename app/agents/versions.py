"""Config versions: immutable snapshots, the saves that create them, and the revision log.

Versions. A config snapshot is immutable and `(agent_id, version)` is unique, so a version
number names exactly one config forever: a binding pinned to a snapshot, a runtime session or a
run record that says "version 3" can never see that config change. Every save therefore inserts a
new snapshot with the next version number and moves `agents.active_config_snapshot_id` to it.
The two save operations on an existing agent differ in intent, which the revision records:

- `save_current_version`: an edit of the version being worked on (the editor's "save"). The new
  snapshot carries the active snapshot's `summary` and `version_note` forward unless the request
  gives new ones, so a client can present a run of such saves as one evolving version.
- `save_new_version`: a version the user chose to mark as new; nothing is carried forward.

The alternatives do not hold up: rewriting the active snapshot in place breaks immutability (and
silently changes what pinned bindings run), and a second row with the same number is what the
unique constraint forbids.

Revisions. Every save writes one `agent_config_revisions` row, numbered per agent:
`previous_snapshot_id` is the agent's active snapshot before the save (null for a new agent's
first version; the *source* agent's active snapshot for `save_new_agent`) and
`current_snapshot_id` the active one after it. `save_to_roster` changes the agent's scope, not
its config: its edge goes from the active snapshot to itself.

Concurrency: every save locks the agent row before it numbers anything (see `app.agents.service`),
so concurrent saves get consecutive, distinct version and revision numbers.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents.checks import check_agent_config
from app.agents.schemas import (
    AgentSaveAs,
    RevisionPage,
    RevisionRead,
    SaveResult,
    SaveToRoster,
    VersionPage,
    VersionRead,
    VersionSave,
    VersionSaveOperation,
    VersionSummary,
    dump_config,
)
from app.agents.service import (
    Saved,
    active_snapshot,
    actor,
    append_snapshot,
    editable_agent,
    get_agent_row,
    holds_roster_name,
    insert_agent,
    name_taken,
)
from app.errors import Conflict, NotFound
from app.keys import Principal
from app.layers import LayerRegistry
from app.models import Agent, AgentConfigOperation, AgentConfigRevision, AgentScope, AgentStatus
from app.schemas.agent_config import load_soul_config


async def save_version(
    session: AsyncSession,
    principal: Principal,
    agent_id: uuid.UUID,
    request: VersionSave,
    registry: LayerRegistry,
) -> SaveResult:
    """Save `request.config` as a new immutable snapshot and make it active (module docstring).

    Raises `ValidationFailed` (422) when a node run of the config would be refused
    (`app.agents.checks`), `agent_not_found` (404) and `agent_archived` (409).
    """
    check_agent_config(request.config, registry, tenant_id=str(principal.tenant_id))
    agent = await editable_agent(session, principal.tenant_id, agent_id)
    previous = await active_snapshot(session, agent)
    summary, version_note = request.summary, request.version_note
    if request.operation is VersionSaveOperation.SAVE_CURRENT_VERSION:
        summary = previous.summary if summary is None else summary
        version_note = previous.version_note if version_note is None else version_note
    saved = await append_snapshot(
        session,
        agent,
        dump_config(request.config),
        operation=request.operation.operation,
        previous_snapshot_id=previous.id,
        summary=summary,
        version_note=version_note,
        created_by=actor(principal),
    )
    return saved.read()


async def save_as_new_agent(
    session: AsyncSession,
    principal: Principal,
    agent_id: uuid.UUID,
    request: AgentSaveAs,
    registry: LayerRegistry,
) -> SaveResult:
    """Copy an agent (archived ones too) into a new agent: version 1, a `save_new_agent` revision.

    The new agent takes the source's active config unless `request.config` is given, and its
    presentation fields unless overridden. Its revision's `previous_snapshot_id` is the source's
    active snapshot. A workflow-only copy stays attached to the source's workflow node; a roster
    copy is attached to no workflow. The copied config is checked like any save (it becomes a
    new version on this server as it is configured now). Raises `ValidationFailed` (422,
    `app.agents.checks`), `agent_not_found` (404) and `agent_name_taken` (409).
    """
    source = await get_agent_row(session, principal.tenant_id, agent_id)
    source_snapshot = await active_snapshot(session, source)
    checked = (
        request.config if request.config is not None else load_soul_config(source_snapshot.config)
    )
    check_agent_config(checked, registry, tenant_id=str(principal.tenant_id))
    fields = request.model_fields_set
    workflow_only = request.scope is AgentScope.WORKFLOW_ONLY
    agent = Agent(
        tenant_id=principal.tenant_id,
        name=request.name,
        description=request.description if request.description is not None else source.description,
        icon_type=request.icon_type if "icon_type" in fields else source.icon_type,
        icon=request.icon if "icon" in fields else source.icon,
        icon_background=request.icon_background
        if "icon_background" in fields
        else source.icon_background,
        scope=request.scope,
        source=source.source,
        app_id=source.app_id,
        workflow_id=source.workflow_id if workflow_only else None,
        workflow_node_id=source.workflow_node_id if workflow_only else None,
        status=AgentStatus.ACTIVE,
        created_by=actor(principal),
        updated_by=actor(principal),
    )
    config = dump_config(request.config) if request.config is not None else source_snapshot.config
    saved = await insert_agent(
        session,
        agent,
        config,
        operation=AgentConfigOperation.SAVE_NEW_AGENT,
        previous_snapshot_id=source_snapshot.id,
        summary=request.summary,
        version_note=request.version_note,
    )
    return saved.read()


async def save_to_roster(
    session: AsyncSession, principal: Principal, agent_id: uuid.UUID, request: SaveToRoster
) -> SaveResult:
    """Promote a workflow-only agent to the roster, optionally renaming it.

    Writes a `save_to_roster` revision from the active snapshot to itself (the config does not
    change). Bindings to the agent are left as they are. Raises `agent_not_found` (404),
    `agent_archived`, `already_in_roster` and `agent_name_taken` (409).
    """
    agent = await editable_agent(session, principal.tenant_id, agent_id)
    if agent.scope is AgentScope.ROSTER:
        raise Conflict(
            "the agent is already in the roster",
            code="already_in_roster",
            details={"agent_id": str(agent.id)},
        )
    snapshot = await active_snapshot(session, agent)
    name = request.name or agent.name
    try:
        async with session.begin_nested():
            agent.scope = AgentScope.ROSTER
            agent.name = name
            agent.updated_by = actor(principal)
            await session.flush()
    except IntegrityError:
        if await holds_roster_name(session, principal.tenant_id, name):
            raise name_taken(name) from None
        raise
    revision = AgentConfigRevision(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        previous_snapshot_id=snapshot.id,
        current_snapshot_id=snapshot.id,
        revision=await repository.next_revision(session, agent.id),
        operation=AgentConfigOperation.SAVE_TO_ROSTER,
        created_by=actor(principal),
    )
    session.add(revision)
    await session.flush()
    return Saved(agent, snapshot, revision).read()


async def list_versions(
    session: AsyncSession,
    principal: Principal,
    agent_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
) -> VersionPage:
    agent = await get_agent_row(session, principal.tenant_id, agent_id)
    rows = await repository.list_snapshots(
        session, principal.tenant_id, agent.id, before=before, limit=limit + 1
    )
    page = rows[:limit]
    return VersionPage(
        items=[VersionSummary.from_row(row, agent.active_config_snapshot_id) for row in page],
        next_cursor=page[-1].version if len(rows) > limit else None,
    )


async def get_version(
    session: AsyncSession, principal: Principal, agent_id: uuid.UUID, version: int
) -> VersionRead:
    """One snapshot with its config; `agent_not_found` or `version_not_found` (404)."""
    agent = await get_agent_row(session, principal.tenant_id, agent_id)
    snapshot = await repository.get_snapshot_by_version(
        session, principal.tenant_id, agent.id, version
    )
    if snapshot is None:
        raise NotFound(
            f"the agent has no version {version}",
            code="version_not_found",
            details={"version": version},
        )
    return VersionRead.from_row(snapshot, agent.active_config_snapshot_id)


async def list_revisions(
    session: AsyncSession,
    principal: Principal,
    agent_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
) -> RevisionPage:
    agent = await get_agent_row(session, principal.tenant_id, agent_id)
    rows = await repository.list_revisions(
        session, principal.tenant_id, agent.id, before=before, limit=limit + 1
    )
    page = rows[:limit]
    return RevisionPage(
        items=[RevisionRead.from_row(row) for row in page],
        next_cursor=page[-1].revision if len(rows) > limit else None,
    )
