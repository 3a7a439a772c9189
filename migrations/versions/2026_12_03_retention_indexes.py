"""Indexes for the retention sweeper (`app.retention`).

- `ix_runs_finished_at`: the oldest finished runs, batch by batch (partial: only terminal runs
  have `finished_at`, so inserting and claiming runs does not touch it);
- `ix_runs_snapshot_in_run_id`: whether a queued or running run starts from a run's snapshot;
- `ix_workflow_agent_runtime_sessions_snapshot_run_id`: whether a run holds a session's latest
  snapshot.

Revision ID: 0005_retention_indexes
Revises: 0004_deferred_tool_calls
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_retention_indexes"
down_revision: str | None = "0004_deferred_tool_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = [
    ("ix_runs_finished_at", "runs", "finished_at"),
    ("ix_runs_snapshot_in_run_id", "runs", "snapshot_in_run_id"),
    (
        "ix_workflow_agent_runtime_sessions_snapshot_run_id",
        "workflow_agent_runtime_sessions",
        "snapshot_run_id",
    ),
]


def upgrade() -> None:
    for name, table, column in _INDEXES:
        condition = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            op.f(name), table, [column], sqlite_where=condition, postgresql_where=condition
        )


def downgrade() -> None:
    for name, table, _column in reversed(_INDEXES):
        op.drop_index(op.f(name), table_name=table)
