"""Workflow node bindings: which agent (and which of its snapshots) a workflow node runs.

One binding per (tenant, workflow, workflow version, node): publishing a new workflow version
creates new bindings and leaves the old version's bindings as they were, so a run of an old version
still resolves the agent it was built with. `current_snapshot_id` pins a snapshot; NULL means
"follow the agent's active snapshot". `node_job_config` is a `WorkflowNodeJobConfig` dump
(`app.schemas.agent_config`): the job this node gives the agent, separate from the agent's soul.
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


class BindingType(StrEnum):
    """What kind of agent a node is bound to."""

    ROSTER_AGENT = "roster_agent"  # a reusable agent from the tenant's roster
    INLINE_AGENT = "inline_agent"  # a workflow-only agent created for this node


class WorkflowAgentNodeBinding(Base):
    """The agent a workflow node runs, with the node's job configuration."""

    __tablename__ = "workflow_agent_node_bindings"
    __table_args__ = (
        enum_check("binding_type", BindingType),
        sa.UniqueConstraint(
            "tenant_id",
            "workflow_id",
            "workflow_version",
            "node_id",
            name="uq_workflow_agent_node_bindings_scope",
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column()
    app_id: Mapped[str] = external_id_column()
    workflow_id: Mapped[str] = external_id_column()
    workflow_version: Mapped[str] = external_id_column()
    node_id: Mapped[str] = external_id_column()
    binding_type: Mapped[BindingType] = mapped_column(StrEnumType(BindingType), nullable=False)
    agent_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("agents.id"), nullable=False, index=True
    )
    current_snapshot_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("agent_config_snapshots.id"), nullable=True
    )
    node_job_config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_by: Mapped[str | None] = external_id_column(nullable=True)
    updated_by: Mapped[str | None] = external_id_column(nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
