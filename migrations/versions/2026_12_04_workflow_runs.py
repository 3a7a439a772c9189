"""Workflow runs with a lifecycle, and the agent versions fixed per workflow run.

- `workflow_runs`: one row per (tenant, workflow_run_id), `open` or `closed`;
- `workflow_run_agent_versions`: the agent snapshot a following binding resolves to for the rest
  of a workflow run.

The upgrade inserts an `open` row for every workflow run that already has runtime sessions, so
that "a workflow run Strata has seen has a row" holds for data written before it (its
`created_at` is the oldest session's). Self-contained like the initial migration (no imports
from `app`).

Revision ID: 0006_workflow_runs
Revises: 0005_retention_indexes
Create Date: 2026-12-04
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006_workflow_runs"
down_revision: str | None = "0005_retention_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXTERNAL_ID = sa.String(length=64)
_BATCH = 1000


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562), like the application's ids, without importing `app`."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10)) & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("workflow_run_id", EXTERNAL_ID, nullable=False),
        sa.Column("status", sa.String(length=32), server_default="open", nullable=False),
        _timestamp("closed_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_runs")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_workflow_runs_tenant_id")
        ),
        sa.UniqueConstraint(
            "tenant_id", "workflow_run_id", name=op.f("uq_workflow_runs_tenant_id_workflow_run_id")
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_workflow_runs_status")),
    )
    op.create_table(
        "workflow_run_agent_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("workflow_run_id", EXTERNAL_ID, nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("snapshot_id", sa.Uuid(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_run_agent_versions")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_workflow_run_agent_versions_tenant_id")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_workflow_run_agent_versions_agent_id")
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["agent_config_snapshots.id"],
            name=op.f("fk_workflow_run_agent_versions_snapshot_id"),
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "workflow_run_id",
            "agent_id",
            name=op.f("uq_workflow_run_agent_versions_scope"),
        ),
    )
    _backfill_workflow_runs()


def _backfill_workflow_runs() -> None:
    sessions = sa.table(
        "workflow_agent_runtime_sessions",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("workflow_run_id", EXTERNAL_ID),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    workflow_runs = sa.table(
        "workflow_runs",
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("workflow_run_id", EXTERNAL_ID),
        sa.column("status", sa.String(length=32)),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    seen = (
        op.get_bind()
        .execute(
            sa.select(
                sessions.c.tenant_id,
                sessions.c.workflow_run_id,
                sa.func.min(sessions.c.created_at).label("created_at"),
            ).group_by(sessions.c.tenant_id, sessions.c.workflow_run_id)
        )
        .all()
    )
    for start in range(0, len(seen), _BATCH):
        rows = seen[start : start + _BATCH]
        op.bulk_insert(
            workflow_runs,
            [
                {
                    "id": _uuid7(),
                    "tenant_id": row.tenant_id,
                    "workflow_run_id": row.workflow_run_id,
                    "status": "open",
                    "created_at": row.created_at,
                    "updated_at": row.created_at,
                }
                for row in rows
            ],
        )


def downgrade() -> None:
    op.drop_table("workflow_run_agent_versions")
    op.drop_table("workflow_runs")
