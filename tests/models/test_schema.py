"""Schema-wide rules: tenant ownership, timestamp types, enum checks and constraint names."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import Base, StrEnumType, UTCDateTime

TENANT_OWNED_TABLES = {
    "api_keys",
    "agents",
    "agent_config_snapshots",
    "agent_config_revisions",
    "workflow_agent_node_bindings",
    "workflow_agent_runtime_sessions",
    "runs",
    "run_events",
    "workflow_runs",
    "workflow_run_agent_versions",
}
POSTGRES_MAX_IDENTIFIER_LENGTH = 63


# Process-level tables: a worker serves every tenant.
SHARED_TABLES = {"tenants", "workers"}


def test_every_table_but_tenants_and_workers_is_tenant_owned() -> None:
    assert set(Base.metadata.tables) - SHARED_TABLES == TENANT_OWNED_TABLES


@pytest.mark.parametrize("table_name", sorted(TENANT_OWNED_TABLES))
def test_tenant_owned_tables_have_an_indexed_tenant_foreign_key(table_name: str) -> None:
    table = Base.metadata.tables[table_name]
    column = table.c.tenant_id
    assert not column.nullable
    assert {fk.target_fullname for fk in column.foreign_keys} == {"tenants.id"}
    # An index whose first column is tenant_id serves tenant lookups and the foreign key.
    assert "tenant_id" in _leading_columns_of_full_indexes(table)


def _leading_columns_of_full_indexes(table: sa.Table) -> set[str]:
    """The first column of every non-partial index and unique constraint of `table`."""
    leading = {
        index.columns[0].name
        for index in table.indexes
        if index.dialect_options["postgresql"].get("where") is None
    }
    leading |= {
        next(iter(constraint.columns)).name
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    }
    return leading


def _tenant_indexing_in_database(connection: Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    report: dict[str, Any] = {}
    for table in sorted(TENANT_OWNED_TABLES):
        foreign_keys = [
            (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
            for fk in inspector.get_foreign_keys(table)
            if fk["constrained_columns"] == ["tenant_id"]
        ]
        leading = [
            index["column_names"][0]
            for index in inspector.get_indexes(table)
            if index.get("dialect_options", {}).get(f"{connection.dialect.name}_where") is None
        ] + [
            constraint["column_names"][0] for constraint in inspector.get_unique_constraints(table)
        ]
        report[table] = (foreign_keys, "tenant_id" in leading)
    return report


async def test_the_migrated_tenant_owned_tables_have_an_indexed_tenant_foreign_key(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        report = await connection.run_sync(_tenant_indexing_in_database)
    assert report == {
        table: ([(["tenant_id"], "tenants", ["id"])], True) for table in TENANT_OWNED_TABLES
    }


def test_every_timestamp_column_is_utc_aware() -> None:
    for table in Base.metadata.tables.values():
        for column in table.columns:
            is_timestamp = column.name.endswith("_at")
            assert isinstance(column.type, UTCDateTime) == is_timestamp, column
            if isinstance(column.type, sa.DateTime):
                pytest.fail(f"{column} is a plain DateTime")


def test_every_enum_column_has_a_check_constraint_listing_its_values() -> None:
    for table in Base.metadata.tables.values():
        checks = {
            str(constraint.name): str(constraint.sqltext)
            for constraint in table.constraints
            if isinstance(constraint, sa.CheckConstraint)
        }
        for column in table.columns:
            if not isinstance(column.type, StrEnumType):
                continue
            check = checks.pop(f"ck_{table.name}_{column.name}")
            assert check.startswith(f"{column.name} IN (")
            for member in column.type.enum:
                assert f"'{member.value}'" in check
        assert checks == {}, f"CHECK constraints on {table.name} not tied to an enum column"


def test_every_constraint_and_index_name_fits_postgresql() -> None:
    names: list[str] = []
    for table in Base.metadata.tables.values():
        names += [str(index.name) for index in table.indexes]
        names += [str(constraint.name) for constraint in table.constraints]
    assert all(names), "every constraint and index is named"
    assert len(names) == len(set(names))
    too_long = [name for name in names if len(name) > POSTGRES_MAX_IDENTIFIER_LENGTH]
    assert too_long == []


def _postgres_column_types(connection: Connection) -> dict[tuple[str, str], str]:
    rows = connection.execute(
        sa.text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
    )
    return {(row.table_name, row.column_name): row.data_type for row in rows}


@pytest.mark.postgres_only
async def test_postgresql_stores_jsonb_and_timestamps_with_time_zone(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        types = await connection.run_sync(_postgres_column_types)
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, UTCDateTime):
                assert types[table.name, column.name] == "timestamp with time zone"
            elif isinstance(column.type, sa.JSON):
                assert types[table.name, column.name] == "jsonb"
