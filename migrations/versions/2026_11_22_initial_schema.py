"""Initial schema: tenants, API keys, agents, config snapshots and revisions, node bindings,
runtime sessions, runs and run events.

This file is self-contained on purpose: it imports nothing from `app`, so later changes to the
models cannot rewrite history. Column types are the plain types behind the models' decorators
(`UTCDateTime` is `DateTime(timezone=True)`, `StrEnumType` is `String(32)`, `JSONType` is `JSON`
or `JSONB` on PostgreSQL), and CHECK lists are written out. Every name goes through `op.f()`: the
names are final, and Alembic must not apply the naming convention to them a second time.
`tests/models/test_migrations.py` checks that the migrated schema equals the models.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ENUM = sa.String(length=32)
EXTERNAL_ID = sa.String(length=64)
ACTIVE_ROSTER = "scope = 'roster' AND status = 'active'"


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Uuid(), nullable=False)


def _tenant_id() -> sa.Column[Any]:
    return sa.Column("tenant_id", sa.Uuid(), nullable=False)


def _check(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}"))


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id")
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        _id(),
        sa.Column("name", sa.String(length=255), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )

    op.create_table(
        "api_keys",
        _id(),
        _tenant_id(),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("role", ENUM, nullable=False),
        _timestamp("created_at"),
        _timestamp("last_used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        _tenant_fk("api_keys"),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        _check("api_keys", "role", ["admin", "member"]),
    )
    op.create_index(op.f("ix_api_keys_tenant_id"), "api_keys", ["tenant_id"])

    op.create_table(
        "agents",
        _id(),
        _tenant_id(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("icon_type", ENUM, nullable=True),
        sa.Column("icon", sa.Text(), nullable=True),
        sa.Column("icon_background", sa.String(length=32), nullable=True),
        sa.Column(
            "agent_kind", sa.String(length=32), server_default="strata_agent", nullable=False
        ),
        sa.Column("scope", ENUM, nullable=False),
        sa.Column("source", ENUM, nullable=False),
        sa.Column("app_id", EXTERNAL_ID, nullable=True),
        sa.Column("workflow_id", EXTERNAL_ID, nullable=True),
        sa.Column("workflow_node_id", EXTERNAL_ID, nullable=True),
        # No foreign key (a cycle with agent_config_snapshots.agent_id): see app/models/agent.py.
        sa.Column("active_config_snapshot_id", sa.Uuid(), nullable=True),
        sa.Column("status", ENUM, server_default="active", nullable=False),
        sa.Column("created_by", EXTERNAL_ID, nullable=True),
        sa.Column("updated_by", EXTERNAL_ID, nullable=True),
        sa.Column("archived_by", EXTERNAL_ID, nullable=True),
        _timestamp("archived_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        _tenant_fk("agents"),
        _check("agents", "icon_type", ["image", "emoji", "link"]),
        _check("agents", "scope", ["roster", "workflow_only"]),
        _check("agents", "source", ["agent_app", "workflow", "imported", "system"]),
        _check("agents", "status", ["active", "archived"]),
    )
    op.create_index(
        op.f("uq_agents_tenant_id_name_active_roster"),
        "agents",
        ["tenant_id", "name"],
        unique=True,
        postgresql_where=sa.text(ACTIVE_ROSTER),
        sqlite_where=sa.text(ACTIVE_ROSTER),
    )
    op.create_index(op.f("ix_agents_tenant_id_updated_at"), "agents", ["tenant_id", "updated_at"])
    op.create_index(op.f("ix_agents_tenant_id_scope"), "agents", ["tenant_id", "scope"])

    op.create_table(
        "agent_config_snapshots",
        _id(),
        _tenant_id(),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("version_note", sa.Text(), nullable=True),
        sa.Column("created_by", EXTERNAL_ID, nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_config_snapshots")),
        _tenant_fk("agent_config_snapshots"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_config_snapshots_agent_id")
        ),
        sa.UniqueConstraint(
            "agent_id", "version", name=op.f("uq_agent_config_snapshots_agent_id_version")
        ),
    )
    op.create_index(
        op.f("ix_agent_config_snapshots_tenant_id"), "agent_config_snapshots", ["tenant_id"]
    )

    op.create_table(
        "agent_config_revisions",
        _id(),
        _tenant_id(),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("previous_snapshot_id", sa.Uuid(), nullable=True),
        sa.Column("current_snapshot_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("operation", ENUM, nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("version_note", sa.Text(), nullable=True),
        sa.Column("created_by", EXTERNAL_ID, nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_config_revisions")),
        _tenant_fk("agent_config_revisions"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_config_revisions_agent_id")
        ),
        sa.ForeignKeyConstraint(
            ["previous_snapshot_id"],
            ["agent_config_snapshots.id"],
            name=op.f("fk_agent_config_revisions_previous_snapshot_id"),
        ),
        sa.ForeignKeyConstraint(
            ["current_snapshot_id"],
            ["agent_config_snapshots.id"],
            name=op.f("fk_agent_config_revisions_current_snapshot_id"),
        ),
        sa.UniqueConstraint(
            "agent_id", "revision", name=op.f("uq_agent_config_revisions_agent_id_revision")
        ),
        _check(
            "agent_config_revisions",
            "operation",
            [
                "create_version",
                "save_current_version",
                "save_new_version",
                "save_new_agent",
                "save_to_roster",
            ],
        ),
    )
    op.create_index(
        op.f("ix_agent_config_revisions_tenant_id"), "agent_config_revisions", ["tenant_id"]
    )

    op.create_table(
        "workflow_agent_node_bindings",
        _id(),
        _tenant_id(),
        sa.Column("app_id", EXTERNAL_ID, nullable=False),
        sa.Column("workflow_id", EXTERNAL_ID, nullable=False),
        sa.Column("workflow_version", EXTERNAL_ID, nullable=False),
        sa.Column("node_id", EXTERNAL_ID, nullable=False),
        sa.Column("binding_type", ENUM, nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("current_snapshot_id", sa.Uuid(), nullable=True),
        sa.Column("node_job_config", JSON, nullable=False),
        sa.Column("created_by", EXTERNAL_ID, nullable=True),
        sa.Column("updated_by", EXTERNAL_ID, nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_agent_node_bindings")),
        _tenant_fk("workflow_agent_node_bindings"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_workflow_agent_node_bindings_agent_id")
        ),
        sa.ForeignKeyConstraint(
            ["current_snapshot_id"],
            ["agent_config_snapshots.id"],
            name=op.f("fk_workflow_agent_node_bindings_current_snapshot_id"),
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "workflow_id",
            "workflow_version",
            "node_id",
            name=op.f("uq_workflow_agent_node_bindings_scope"),
        ),
        _check("workflow_agent_node_bindings", "binding_type", ["roster_agent", "inline_agent"]),
    )
    op.create_index(
        op.f("ix_workflow_agent_node_bindings_agent_id"),
        "workflow_agent_node_bindings",
        ["agent_id"],
    )

    op.create_table(
        "workflow_agent_runtime_sessions",
        _id(),
        _tenant_id(),
        sa.Column("app_id", EXTERNAL_ID, nullable=False),
        sa.Column("workflow_id", EXTERNAL_ID, nullable=False),
        sa.Column("workflow_run_id", EXTERNAL_ID, nullable=False),
        sa.Column("node_id", EXTERNAL_ID, nullable=False),
        sa.Column("node_execution_id", EXTERNAL_ID, nullable=True),
        sa.Column("binding_id", EXTERNAL_ID, nullable=False),
        sa.Column("agent_id", EXTERNAL_ID, nullable=False),
        sa.Column("agent_config_snapshot_id", EXTERNAL_ID, nullable=True),
        sa.Column("backend_run_id", sa.Uuid(), nullable=True),
        sa.Column("current_run_id", sa.Uuid(), nullable=True),
        sa.Column("session_snapshot", JSON, nullable=True),
        sa.Column("composition_layer_specs", JSON, nullable=True),
        sa.Column("status", ENUM, server_default="active", nullable=False),
        _timestamp("cleaned_at", nullable=True),
        sa.Column("cleanup_run_id", sa.Uuid(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_agent_runtime_sessions")),
        _tenant_fk("workflow_agent_runtime_sessions"),
        sa.UniqueConstraint(
            "tenant_id",
            "workflow_run_id",
            "node_id",
            "binding_id",
            "agent_id",
            name=op.f("uq_workflow_agent_runtime_sessions_scope"),
        ),
        _check("workflow_agent_runtime_sessions", "status", ["active", "cleaned"]),
    )
    op.create_index(
        op.f("ix_workflow_agent_runtime_sessions_workflow_run_status"),
        "workflow_agent_runtime_sessions",
        ["tenant_id", "workflow_run_id", "status"],
    )
    op.create_index(
        op.f("ix_workflow_agent_runtime_sessions_backend_run_id"),
        "workflow_agent_runtime_sessions",
        ["backend_run_id"],
    )

    op.create_table(
        "runs",
        _id(),
        _tenant_id(),
        sa.Column("status", ENUM, server_default="queued", nullable=False),
        sa.Column("purpose", ENUM, server_default="agent", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("composition", JSON, nullable=False),
        sa.Column("inputs", JSON, nullable=False),
        sa.Column("session_snapshot_in", JSON, nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        _timestamp("lease_expires_at", nullable=True),
        _timestamp("heartbeat_at", nullable=True),
        _timestamp("cancel_requested_at", nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("last_event_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("deferred_tool_call", JSON, nullable=True),
        sa.Column("session_snapshot", JSON, nullable=True),
        sa.Column("usage", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        _timestamp("created_at"),
        _timestamp("queued_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        _tenant_fk("runs"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["workflow_agent_runtime_sessions.id"],
            name=op.f("fk_runs_session_id"),
        ),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name=op.f("uq_runs_tenant_id_idempotency_key")
        ),
        _check(
            "runs",
            "status",
            ["queued", "running", "cancelling", "succeeded", "paused", "failed", "cancelled"],
        ),
        _check("runs", "purpose", ["agent", "cleanup"]),
    )
    op.create_index(
        op.f("ix_runs_tenant_id_status_created_at"), "runs", ["tenant_id", "status", "created_at"]
    )
    op.create_index(op.f("ix_runs_status_queued_at"), "runs", ["status", "queued_at"])
    op.create_index(op.f("ix_runs_status_lease_expires_at"), "runs", ["status", "lease_expires_at"])
    op.create_index(op.f("ix_runs_session_id"), "runs", ["session_id"])

    op.create_table(
        "run_events",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        _tenant_id(),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_run_events")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_events_run_id"), ondelete="CASCADE"
        ),
        _tenant_fk("run_events"),
    )
    op.create_index(op.f("ix_run_events_tenant_id"), "run_events", ["tenant_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints; children go before their parents.
    for table in (
        "run_events",
        "runs",
        "workflow_agent_runtime_sessions",
        "workflow_agent_node_bindings",
        "agent_config_revisions",
        "agent_config_snapshots",
        "agents",
        "api_keys",
        "tenants",
    ):
        op.drop_table(table)
