"""The migrations build exactly the schema the models declare, and can be undone."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine
from app.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    read_current_revision,
    upgrade_to_head,
)
from app.models import Base, StrEnumType, WorkflowAgentRuntimeSession, new_id, utcnow
from tests.db_fixtures import run_blocking

INITIAL_REVISION = "0001_initial"
HEAD_REVISION = "0007_list_filter_indexes"


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


def _check_constraint_values(connection: Connection) -> dict[str, set[str]]:
    """Every CHECK constraint of the database by name, with the quoted values it lists."""
    inspector = sa.inspect(connection)
    return {
        str(check["name"]): set(re.findall(r"'([^']*)'", check["sqltext"]))
        for table in inspector.get_table_names()
        for check in inspector.get_check_constraints(table)
    }


def _partial_index_filters(connection: Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    return {
        str(index["name"]): index.get("dialect_options", {})
        for index in inspector.get_indexes("agents")
        if index["unique"]
    }


async def test_the_migrated_schema_equals_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        diff = await connection.run_sync(_schema_diff)
    assert diff == []


async def test_the_migrated_check_constraints_allow_exactly_the_enum_values(
    engine: AsyncEngine,
) -> None:
    # Autogenerate does not compare CHECK constraints, so a new enum member without a migration
    # would go unnoticed until the database refused it; compare them here.
    expected = {
        f"ck_{table.name}_{column.name}": {member.value for member in column.type.enum}
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, StrEnumType)
    }
    async with engine.connect() as connection:
        actual = await connection.run_sync(_check_constraint_values)
    assert actual == expected


async def test_the_active_roster_name_index_is_partial_on_the_database(
    engine: AsyncEngine, db_backend: str
) -> None:
    async with engine.connect() as connection:
        unique_indexes = await connection.run_sync(_partial_index_filters)
    options = unique_indexes["uq_agents_tenant_id_name_active_roster"]
    where = options.get(f"{db_backend}_where")
    assert where is not None
    assert "roster" in str(where)
    assert "active" in str(where)


async def test_the_database_is_at_the_head_revision(engine: AsyncEngine) -> None:
    assert head_revision() == HEAD_REVISION
    assert await read_current_revision(engine) == HEAD_REVISION


async def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    # The migration helpers run their own event loop: from async code, call them on a thread.
    try:
        await asyncio.to_thread(downgrade, database_url, "base")
        assert await asyncio.to_thread(current_revision, database_url) is None
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                assert await connection.run_sync(_table_names) == {"alembic_version"}
        finally:
            await engine.dispose()

        await asyncio.to_thread(upgrade_to_head, database_url)
        assert await asyncio.to_thread(current_revision, database_url) == HEAD_REVISION
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(_table_names)
                assert tables == set(Base.metadata.tables) | {"alembic_version"}
                assert await connection.run_sync(_schema_diff) == []
        finally:
            await engine.dispose()
    finally:
        # The PostgreSQL database is shared by the session: leave it at head whatever happened.
        await asyncio.to_thread(upgrade_to_head, database_url)


async def test_member_keys_become_runner_keys_and_back(database_url: str) -> None:
    tenant_id, key_id = uuid.uuid4(), uuid.uuid4()

    async def execute(sql: str, **params: Any) -> list[Any]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                statement = sa.text(sql).bindparams(
                    *(sa.bindparam(name, type_=sa.Uuid()) for name in params)
                )
                result = await connection.execute(statement, params)
                return list(result) if result.returns_rows else []
        finally:
            await engine.dispose()

    try:
        await asyncio.to_thread(downgrade, database_url, "0001_initial")
        await execute(
            "INSERT INTO tenants (id, name, created_at) VALUES (:id, 't', CURRENT_TIMESTAMP)",
            id=tenant_id,
        )
        await execute(
            "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, role, created_at) "
            "VALUES (:id, :tenant, 'h', 'p', 'member', CURRENT_TIMESTAMP)",
            id=key_id,
            tenant=tenant_id,
        )

        await asyncio.to_thread(upgrade_to_head, database_url)
        assert await execute("SELECT role FROM api_keys") == [("runner",)]
        await asyncio.to_thread(downgrade, database_url, "0001_initial")
        assert await execute("SELECT role FROM api_keys") == [("member",)]
    finally:
        await asyncio.to_thread(upgrade_to_head, database_url)


def test_upgrading_a_database_at_head_changes_nothing(database_url: str) -> None:
    run_blocking(upgrade_to_head, database_url)
    assert run_blocking(current_revision, database_url) == HEAD_REVISION


def test_the_migration_helpers_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert head_revision() == HEAD_REVISION
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    run_blocking(upgrade_to_head, url)
    assert run_blocking(current_revision, url) == HEAD_REVISION


def test_a_url_with_escaped_characters_reaches_alembic_unchanged() -> None:
    url = "postgresql+asyncpg://strata:p%40ss%25word@db:5432/strata"
    assert alembic_config(url).get_main_option("sqlalchemy.url") == url


_SNAPSHOT = {"schema_version": 1, "layers": [{"name": "history", "lifecycle_state": "suspended"}]}


async def _execute(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(sa.text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_sessions_keep_their_snapshot_across_the_execution_core_migration(
    database_url: str,
) -> None:
    """0001 stored each session's snapshot on the session row; 0002 points at the run that
    produced it (its `backend_run_id`), and the downgrade copies it back."""
    ids = {name: new_id() for name in ("tenant", "run", "session")}
    snapshot = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
    try:
        await asyncio.to_thread(downgrade, database_url, INITIAL_REVISION)
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    sa.text(
                        "INSERT INTO tenants (id, name, created_at) VALUES (:id, 't', :now)"
                    ).bindparams(
                        sa.bindparam("id", type_=sa.Uuid()),
                        sa.bindparam("now", type_=sa.DateTime(timezone=True)),
                    ),
                    {"id": ids["tenant"], "now": utcnow()},
                )
                runs = sa.table(
                    "runs",
                    sa.column("id", sa.Uuid()),
                    sa.column("tenant_id", sa.Uuid()),
                    sa.column("status", sa.String()),
                    sa.column("purpose", sa.String()),
                    sa.column("composition", snapshot),
                    sa.column("inputs", snapshot),
                    sa.column("request_fingerprint", sa.String()),
                    sa.column("metadata", snapshot),
                    sa.column("session_snapshot", snapshot),
                    sa.column("created_at", sa.DateTime(timezone=True)),
                    sa.column("queued_at", sa.DateTime(timezone=True)),
                    sa.column("updated_at", sa.DateTime(timezone=True)),
                )
                now = utcnow()
                await connection.execute(
                    runs.insert().values(
                        id=ids["run"],
                        tenant_id=ids["tenant"],
                        status="succeeded",
                        purpose="agent",
                        composition={"layers": []},
                        inputs={},
                        request_fingerprint="x",
                        metadata={},
                        session_snapshot=_SNAPSHOT,
                        created_at=now,
                        queued_at=now,
                        updated_at=now,
                    )
                )
                sessions = sa.table(
                    "workflow_agent_runtime_sessions",
                    *(
                        sa.column(name, sa.String())
                        for name in (
                            "app_id",
                            "workflow_id",
                            "workflow_run_id",
                            "node_id",
                            "binding_id",
                            "agent_id",
                            "status",
                        )
                    ),
                    sa.column("id", sa.Uuid()),
                    sa.column("tenant_id", sa.Uuid()),
                    sa.column("backend_run_id", sa.Uuid()),
                    sa.column("session_snapshot", snapshot),
                    sa.column("created_at", sa.DateTime(timezone=True)),
                    sa.column("updated_at", sa.DateTime(timezone=True)),
                )
                await connection.execute(
                    sessions.insert().values(
                        id=ids["session"],
                        tenant_id=ids["tenant"],
                        app_id="a",
                        workflow_id="w",
                        workflow_run_id="r",
                        node_id="n",
                        binding_id="b",
                        agent_id="g",
                        status="active",
                        backend_run_id=ids["run"],
                        session_snapshot=_SNAPSHOT,
                        created_at=now,
                        updated_at=now,
                    )
                )
        finally:
            await engine.dispose()

        await asyncio.to_thread(upgrade_to_head, database_url)
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                row = (
                    await connection.execute(
                        sa.select(WorkflowAgentRuntimeSession.snapshot_run_id).where(
                            WorkflowAgentRuntimeSession.id == ids["session"]
                        )
                    )
                ).one()
        finally:
            await engine.dispose()
        assert row.snapshot_run_id == ids["run"]

        await asyncio.to_thread(downgrade, database_url, INITIAL_REVISION)
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                copied = (
                    await connection.execute(
                        sa.select(sa.column("session_snapshot", snapshot)).select_from(
                            sa.table("workflow_agent_runtime_sessions")
                        )
                    )
                ).scalar_one()
        finally:
            await engine.dispose()
        assert copied == _SNAPSHOT
    finally:
        await asyncio.to_thread(upgrade_to_head, database_url)


async def test_workflow_runs_that_have_sessions_get_an_open_row_on_upgrade(
    database_url: str,
) -> None:
    """0006 inserts one `open` workflow_runs row per (tenant, workflow run) with sessions,
    created when its oldest session was; the downgrade drops the tables."""
    tenant = new_id()
    older = utcnow().replace(microsecond=0)
    text_columns = ("app_id", "workflow_id", "workflow_run_id", "node_id", "binding_id")
    sessions = sa.table(
        "workflow_agent_runtime_sessions",
        *(sa.column(name, sa.String()) for name in (*text_columns, "agent_id", "status")),
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    try:
        await asyncio.to_thread(downgrade, database_url, "0005_retention_indexes")
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    sa.text(
                        "INSERT INTO tenants (id, name, created_at) VALUES (:id, 'wr', :now)"
                    ).bindparams(
                        sa.bindparam("id", type_=sa.Uuid()),
                        sa.bindparam("now", type_=sa.DateTime(timezone=True)),
                    ),
                    {"id": tenant, "now": older},
                )
                for node, created in (("n1", older), ("n2", utcnow())):
                    await connection.execute(
                        sessions.insert().values(
                            id=new_id(),
                            tenant_id=tenant,
                            app_id="a",
                            workflow_id="w",
                            workflow_run_id="wr-old",
                            node_id=node,
                            binding_id="b",
                            agent_id="g",
                            status="active",
                            created_at=created,
                            updated_at=created,
                        )
                    )
        finally:
            await engine.dispose()

        await asyncio.to_thread(upgrade_to_head, database_url)

        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = (
                    await connection.execute(
                        sa.text(
                            "SELECT workflow_run_id, status, closed_at, created_at "
                            "FROM workflow_runs WHERE tenant_id = :tenant"
                        ).bindparams(sa.bindparam("tenant", type_=sa.Uuid())),
                        {"tenant": tenant},
                    )
                ).all()
        finally:
            await engine.dispose()
        [(workflow_run_id, status, closed_at, created_at)] = rows
        assert (workflow_run_id, status, closed_at) == ("wr-old", "open", None)
        assert str(created_at)[:19] == older.replace(tzinfo=None).isoformat(sep=" ")[:19]
    finally:
        await asyncio.to_thread(upgrade_to_head, database_url)
