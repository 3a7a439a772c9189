"""Runtime sessions: the state an agent keeps across the runs of one workflow node execution scope.

One row per (tenant, workflow_run_id, node_id, binding_id, agent_id). It points at the latest
compositor session snapshot (`snapshot_run_id`: the run whose resulting snapshot is the session's
state; the snapshot is stored once, on that run), holds the replayable composition
(`composition_layer_specs`: the layer specs without secrets, replayed by the cleanup run that
retires the session), and the ids of the runs around it.

Invariants:

- The scope ids are the caller's strings, not foreign keys: a workflow engine may name scopes that
  have no Strata agent or binding behind them.
- At most one run is in flight per session: `current_run_id` is set when a run on the session is
  created and cleared when it ends; a second run while it is set is refused (409).
- `status` is `active` while the session may be resumed; `cleaned` once its resources were released
  (or it was retired after a failed run), with `cleaned_at` and, when a cleanup run did it,
  `cleanup_run_id`. A cleaned session is never resumed.
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


class RuntimeSessionStatus(StrEnum):
    """Whether a session may still be resumed."""

    ACTIVE = "active"  # holds a resumable snapshot (or none yet)
    CLEANED = "cleaned"  # retired: resources released, never resumed again


class WorkflowAgentRuntimeSession(Base):
    """The resumable state of one agent in one workflow-run node scope."""

    __tablename__ = "workflow_agent_runtime_sessions"
    __table_args__ = (
        enum_check("status", RuntimeSessionStatus),
        sa.UniqueConstraint(
            "tenant_id",
            "workflow_run_id",
            "node_id",
            "binding_id",
            "agent_id",
            name="uq_workflow_agent_runtime_sessions_scope",
        ),
        sa.Index(
            "ix_workflow_agent_runtime_sessions_workflow_run_status",
            "tenant_id",
            "workflow_run_id",
            "status",
        ),
        # `GET /v1/sessions?node_id=…` and `GET /v1/runs?node_id=…`
        sa.Index(
            "ix_workflow_agent_runtime_sessions_tenant_id_node_id",
            "tenant_id",
            "node_id",
        ),
        # retention: is this run the latest snapshot of a session?
        sa.Index(
            "ix_workflow_agent_runtime_sessions_snapshot_run_id",
            "snapshot_run_id",
            sqlite_where=sa.text("snapshot_run_id IS NOT NULL"),
            postgresql_where=sa.text("snapshot_run_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column()
    app_id: Mapped[str] = external_id_column()
    workflow_id: Mapped[str] = external_id_column()
    workflow_run_id: Mapped[str] = external_id_column()
    node_id: Mapped[str] = external_id_column()
    node_execution_id: Mapped[str | None] = external_id_column(nullable=True)
    binding_id: Mapped[str] = external_id_column()
    agent_id: Mapped[str] = external_id_column()
    agent_config_snapshot_id: Mapped[str | None] = external_id_column(nullable=True)
    backend_run_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    current_run_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    snapshot_run_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    composition_layer_specs: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSONType, nullable=True
    )
    status: Mapped[RuntimeSessionStatus] = mapped_column(
        StrEnumType(RuntimeSessionStatus),
        nullable=False,
        default=RuntimeSessionStatus.ACTIVE,
        server_default=RuntimeSessionStatus.ACTIVE.value,
    )
    cleaned_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cleanup_run_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
