"""Agents (the roster), their immutable config snapshots, and the revision log.

- `agents`: one row per agent. A *roster* agent is reusable across workflows; a *workflow_only*
  agent is an inline agent owned by one workflow node. Names of ACTIVE ROSTER agents are unique per
  tenant (a partial unique index), so archiving an agent frees its name, and workflow-only agents
  may share names with anything.
- `agent_config_snapshots`: immutable `AgentSoulConfig` JSON (`app.schemas.agent_config`) per
  (agent, version). Never updated, never holds a plaintext secret (secrets are references).
- `agent_config_revisions`: one audit edge per save: which snapshot was current before and after,
  numbered per agent by `revision`, with the `operation` that produced it.

`agents.active_config_snapshot_id` deliberately has no database foreign key: snapshots already
reference their agent, so a second FK back would make the two tables a cycle (an agent row must
exist before its first snapshot, and the snapshot before the agent points at it). PostgreSQL could
handle that with a deferred constraint added by `ALTER TABLE`, but SQLite can neither add a
constraint to an existing table nor defer it portably. The agents service sets the column in the
same transaction that inserts the snapshot, and always to a snapshot of the same agent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    JSONType,
    StrEnumType,
    created_at_column,
    enum_check,
    external_id_column,
    id_column,
    tenant_column,
    updated_at_column,
)

DEFAULT_AGENT_KIND = "strata_agent"
"""`agents.agent_kind` of agents Strata runs itself; other kinds are free-form labels."""


class AgentIconType(StrEnum):
    """How `agents.icon` is to be read."""

    IMAGE = "image"  # an uploaded image's id
    EMOJI = "emoji"  # an emoji character
    LINK = "link"  # an image URL


class AgentScope(StrEnum):
    """Where an agent can be used."""

    ROSTER = "roster"  # listed and reusable by any workflow of the tenant
    WORKFLOW_ONLY = "workflow_only"  # an inline agent owned by one workflow node


class AgentSource(StrEnum):
    """What created the agent."""

    AGENT_APP = "agent_app"  # created as an agent in its own right (API, UI)
    WORKFLOW = "workflow"  # created from a workflow node (inline agent, save to roster)
    IMPORTED = "imported"  # imported from an export or another system
    SYSTEM = "system"  # created by Strata itself


class AgentStatus(StrEnum):
    """Lifecycle of an agent row; agents are archived, never deleted."""

    ACTIVE = "active"  # usable; an active roster agent holds its name
    ARCHIVED = "archived"  # hidden and not runnable; its roster name is free again


class AgentConfigOperation(StrEnum):
    """The save that produced an `agent_config_revisions` row."""

    CREATE_VERSION = "create_version"  # the first snapshot of a new agent
    SAVE_CURRENT_VERSION = "save_current_version"  # saved the edit as the current version
    SAVE_NEW_VERSION = "save_new_version"  # added a snapshot with the next version number
    SAVE_NEW_AGENT = "save_new_agent"  # copied into a new agent ("save as")
    SAVE_TO_ROSTER = "save_to_roster"  # promoted an inline workflow agent to the roster


class Agent(Base):
    """An agent of a tenant: identity, presentation and the pointer to its active config."""

    __tablename__ = "agents"
    __table_args__ = (
        enum_check("icon_type", AgentIconType),
        enum_check("scope", AgentScope),
        enum_check("source", AgentSource),
        enum_check("status", AgentStatus),
        # Only active roster agents compete for a name. Both dialect keywords are needed: each
        # dialect only reads its own, and without one the index would be a plain unique index.
        sa.Index(
            "uq_agents_tenant_id_name_active_roster",
            "tenant_id",
            "name",
            unique=True,
            postgresql_where=sa.text("scope = 'roster' AND status = 'active'"),
            sqlite_where=sa.text("scope = 'roster' AND status = 'active'"),
        ),
        sa.Index(None, "tenant_id", "updated_at"),
        sa.Index(None, "tenant_id", "scope"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column()
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    description: Mapped[str] = mapped_column(sa.Text(), nullable=False, default="")
    icon_type: Mapped[AgentIconType | None] = mapped_column(
        StrEnumType(AgentIconType), nullable=True
    )
    icon: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    icon_background: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    agent_kind: Mapped[str] = mapped_column(
        sa.String(32), nullable=False, default=DEFAULT_AGENT_KIND, server_default=DEFAULT_AGENT_KIND
    )
    scope: Mapped[AgentScope] = mapped_column(StrEnumType(AgentScope), nullable=False)
    source: Mapped[AgentSource] = mapped_column(StrEnumType(AgentSource), nullable=False)
    app_id: Mapped[str | None] = external_id_column(nullable=True)
    workflow_id: Mapped[str | None] = external_id_column(nullable=True)
    workflow_node_id: Mapped[str | None] = external_id_column(nullable=True)
    # No ForeignKey: see the module docstring.
    active_config_snapshot_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    status: Mapped[AgentStatus] = mapped_column(
        StrEnumType(AgentStatus),
        nullable=False,
        default=AgentStatus.ACTIVE,
        server_default=AgentStatus.ACTIVE.value,
    )
    created_by: Mapped[str | None] = external_id_column(nullable=True)
    updated_by: Mapped[str | None] = external_id_column(nullable=True)
    archived_by: Mapped[str | None] = external_id_column(nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class AgentConfigSnapshot(Base):
    """One immutable version of an agent's `AgentSoulConfig`."""

    __tablename__ = "agent_config_snapshots"
    __table_args__ = (sa.UniqueConstraint("agent_id", "version"),)

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column(index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agents.id"), nullable=False)
    version: Mapped[int] = mapped_column(nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    summary: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    version_note: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    created_by: Mapped[str | None] = external_id_column(nullable=True)
    created_at: Mapped[datetime] = created_at_column()


class AgentConfigRevision(Base):
    """An audit edge: the agent's current snapshot moved from `previous` to `current`."""

    __tablename__ = "agent_config_revisions"
    __table_args__ = (
        enum_check("operation", AgentConfigOperation),
        sa.UniqueConstraint("agent_id", "revision"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column(index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agents.id"), nullable=False)
    previous_snapshot_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("agent_config_snapshots.id"), nullable=True
    )
    current_snapshot_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("agent_config_snapshots.id"), nullable=False
    )
    revision: Mapped[int] = mapped_column(nullable=False)
    operation: Mapped[AgentConfigOperation] = mapped_column(
        StrEnumType(AgentConfigOperation), nullable=False
    )
    summary: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    version_note: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    created_by: Mapped[str | None] = external_id_column(nullable=True)
    created_at: Mapped[datetime] = created_at_column()
