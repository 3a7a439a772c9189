"""Indexes for the list filters of `GET /v1/runs` and `GET /v1/sessions`.

- `ix_runs_tenant_id_created_at`: `GET /v1/runs?created_after=…&created_before=…` (a tenant's
  runs in a time range, without a status; with one, `ix_runs_tenant_id_status_created_at`);
- `ix_workflow_agent_runtime_sessions_tenant_id_node_id`: `GET /v1/sessions?node_id=…` and
  `GET /v1/runs?node_id=…` (a node's sessions, then their runs through `ix_runs_session_id`).

`GET /v1/runs?workflow_run_id=…` needs no new index: it selects the workflow run's sessions
through `ix_workflow_agent_runtime_sessions_workflow_run_status`, then their runs through
`ix_runs_session_id`; `session_id` uses `ix_runs_session_id` directly.

Revision ID: 0007_list_filter_indexes
Revises: 0006_workflow_runs
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_list_filter_indexes"
down_revision: str | None = "0006_workflow_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = [
    ("ix_runs_tenant_id_created_at", "runs", ["tenant_id", "created_at"]),
    (
        "ix_workflow_agent_runtime_sessions_tenant_id_node_id",
        "workflow_agent_runtime_sessions",
        ["tenant_id", "node_id"],
    ),
]


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(op.f(name), table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(op.f(name), table_name=table)
