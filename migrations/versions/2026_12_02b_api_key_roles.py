"""API key roles: `admin`, `runner`, `reader` (were `admin`, `member`).

Roles are enforced from this revision on. An existing `member` key becomes a `runner` key (the
member role could do everything but manage keys, which is what a runner can do); `admin` keys
stay admin. Downgrading maps `runner` and `reader` back to `member`.

Revision ID: 0003_api_key_roles
Revises: 0002_execution_core
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_api_key_roles"
down_revision: str | None = "0002_execution_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "ck_api_keys_role"


def _replace_check(values: Sequence[str]) -> None:
    allowed = ", ".join(f"'{value}'" for value in values)
    # batch mode: SQLite cannot alter a CHECK constraint in place (the table is copied)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f(_CHECK), type_="check")
        batch.create_check_constraint(op.f(_CHECK), sa.text(f"role IN ({allowed})"))


def upgrade() -> None:
    _replace_check(["admin", "member", "runner", "reader"])
    op.execute("UPDATE api_keys SET role = 'runner' WHERE role = 'member'")
    _replace_check(["admin", "runner", "reader"])


def downgrade() -> None:
    _replace_check(["admin", "member", "runner", "reader"])
    op.execute("UPDATE api_keys SET role = 'member' WHERE role IN ('runner', 'reader')")
    _replace_check(["admin", "member"])
