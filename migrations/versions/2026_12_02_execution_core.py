"""Execution core at load: per-worker liveness and snapshots stored once.

- `workers`: one row per worker process with its heartbeat; a run's liveness is its worker's
  (the per-run lease columns `runs.lease_expires_at` and `runs.heartbeat_at` and their index go;
  a partial index on `runs.lease_owner` finds a worker's runs).
- `runs.snapshot_in_run_id`: a run that continues a runtime session points at the run whose
  resulting snapshot it starts from instead of storing a copy.
- `workflow_agent_runtime_sessions.snapshot_run_id` replaces the session's own copy of its
  latest snapshot (`session_snapshot`): the snapshot lives on that run. Existing rows keep
  working: the upgrade points each session at its `backend_run_id` when that run's snapshot is
  the session's (active sessions), and the downgrade copies the snapshots back.

Self-contained like the initial migration (no imports from `app`).

Revision ID: 0002_execution_core
Revises: 0001_initial
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_execution_core"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_heartbeat_at"), "workers", ["heartbeat_at"])

    with op.batch_alter_table("runs") as batch:
        batch.drop_index(op.f("ix_runs_status_lease_expires_at"))
        batch.drop_column("lease_expires_at")
        batch.drop_column("heartbeat_at")
        batch.add_column(sa.Column("snapshot_in_run_id", sa.Uuid(), nullable=True))
    op.create_index(
        op.f("ix_runs_lease_owner"),
        "runs",
        ["lease_owner"],
        sqlite_where=sa.text("lease_owner IS NOT NULL"),
        postgresql_where=sa.text("lease_owner IS NOT NULL"),
    )

    with op.batch_alter_table("workflow_agent_runtime_sessions") as batch:
        batch.add_column(sa.Column("snapshot_run_id", sa.Uuid(), nullable=True))
    sessions = sa.table(
        "workflow_agent_runtime_sessions",
        sa.column("snapshot_run_id", sa.Uuid()),
        sa.column("backend_run_id", sa.Uuid()),
        sa.column("session_snapshot", JSON),
        sa.column("status", sa.String(length=32)),
    )
    # An active session's snapshot is the one its last run (`backend_run_id`) ended with; a
    # cleaned session is never resumed, so it needs none.
    op.execute(
        sessions.update()
        .where(sessions.c.session_snapshot.is_not(None), sessions.c.status == "active")
        .values(snapshot_run_id=sessions.c.backend_run_id)
    )
    with op.batch_alter_table("workflow_agent_runtime_sessions") as batch:
        batch.drop_column("session_snapshot")


def downgrade() -> None:
    with op.batch_alter_table("workflow_agent_runtime_sessions") as batch:
        batch.add_column(sa.Column("session_snapshot", JSON, nullable=True))
    sessions = sa.table(
        "workflow_agent_runtime_sessions",
        sa.column("snapshot_run_id", sa.Uuid()),
        sa.column("session_snapshot", JSON),
    )
    runs = sa.table("runs", sa.column("id", sa.Uuid()), sa.column("session_snapshot", JSON))
    op.execute(
        sessions.update().values(
            session_snapshot=sa.select(runs.c.session_snapshot)
            .where(runs.c.id == sessions.c.snapshot_run_id)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table("workflow_agent_runtime_sessions") as batch:
        batch.drop_column("snapshot_run_id")

    op.drop_index(op.f("ix_runs_lease_owner"), table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("snapshot_in_run_id")
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(op.f("ix_runs_status_lease_expires_at"), ["status", "lease_expires_at"])

    op.drop_index(op.f("ix_workers_heartbeat_at"), table_name="workers")
    op.drop_table("workers")
