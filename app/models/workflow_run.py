"""Workflow runs: the lifecycle of one execution of a workflow, and the agent versions it uses.

- `workflow_runs`: one row per (tenant, workflow_run_id), the caller's id of one execution of a
  workflow. The row is inserted (`open`) by the first run that occupies a runtime session of the
  workflow run, or (`closed`) by a close of a workflow run Strata has not seen yet. `closed` is
  final: from then on no run may occupy a session of it (409 `workflow_run_closed`). Every run
  that occupies a session reads the row with a share lock in the same transaction, and a close
  updates it, so a close and a run that races it are serialized by the row (see
  `app.sessions.scope`).
- `workflow_run_agent_versions`: the agent config snapshot a *following* binding (one that pins no
  snapshot) resolved to at the first node run of the workflow run that used that agent; every
  later node run of the workflow run uses the same snapshot, so editing the agent mid-run never
  changes a live session's composition. One row per (tenant, workflow_run_id, agent); the first
  writer wins (insert, ignoring a conflict, then read back).

Like the session scope ids, `workflow_run_id` is the caller's string, not a foreign key.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    StrEnumType,
    created_at_column,
    enum_check,
    external_id_column,
    id_column,
    tenant_column,
    updated_at_column,
)


class WorkflowRunStatus(StrEnum):
    """Whether a workflow run still accepts runs."""

    OPEN = "open"  # runs and node runs may start on its sessions
    CLOSED = "closed"  # sealed: new runs are refused; its sessions are being or were retired


class WorkflowRun(Base):
    """One execution of a workflow, as far as Strata's sessions are concerned."""

    __tablename__ = "workflow_runs"
    __table_args__ = (
        enum_check("status", WorkflowRunStatus),
        sa.UniqueConstraint("tenant_id", "workflow_run_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column()
    workflow_run_id: Mapped[str] = external_id_column()
    status: Mapped[WorkflowRunStatus] = mapped_column(
        StrEnumType(WorkflowRunStatus),
        nullable=False,
        default=WorkflowRunStatus.OPEN,
        server_default=WorkflowRunStatus.OPEN.value,
    )
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class WorkflowRunAgentVersion(Base):
    """The agent snapshot a workflow run's following bindings of one agent resolve to."""

    __tablename__ = "workflow_run_agent_versions"
    __table_args__ = (
        # the convention's name would pass PostgreSQL's 63 characters
        sa.UniqueConstraint(
            "tenant_id", "workflow_run_id", "agent_id", name="uq_workflow_run_agent_versions_scope"
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column()
    workflow_run_id: Mapped[str] = external_id_column()
    agent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agents.id"), nullable=False)
    snapshot_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("agent_config_snapshots.id"), nullable=False
    )
    created_at: Mapped[datetime] = created_at_column()
