"""A paused run keeps every pending call: `runs.deferred_tool_calls` (a list) replaces
`runs.deferred_tool_call` (one object). The upgrade wraps each stored call in a list; the
downgrade keeps the first call.

Self-contained like the initial migration (no imports from `app`).

Revision ID: 0004_deferred_tool_calls
Revises: 0003_api_key_roles
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_deferred_tool_calls"
down_revision: str | None = "0003_api_key_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)


def _runs(*columns: str) -> sa.TableClause:
    return sa.table("runs", sa.column("id", sa.Uuid()), *(sa.column(c, JSON) for c in columns))


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("deferred_tool_calls", JSON, nullable=True))
    connection = op.get_bind()
    runs = _runs("deferred_tool_call", "deferred_tool_calls")
    rows = connection.execute(
        sa.select(runs.c.id, runs.c.deferred_tool_call).where(
            runs.c.deferred_tool_call.is_not(None)
        )
    ).all()
    for run_id, call in rows:
        connection.execute(
            runs.update().where(runs.c.id == run_id).values(deferred_tool_calls=[call])
        )
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deferred_tool_call")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("deferred_tool_call", JSON, nullable=True))
    connection = op.get_bind()
    runs = _runs("deferred_tool_call", "deferred_tool_calls")
    rows = connection.execute(
        sa.select(runs.c.id, runs.c.deferred_tool_calls).where(
            runs.c.deferred_tool_calls.is_not(None)
        )
    ).all()
    for run_id, calls in rows:
        if calls:
            connection.execute(
                runs.update().where(runs.c.id == run_id).values(deferred_tool_call=calls[0])
            )
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deferred_tool_calls")
