"""Unique and CHECK constraints refuse what they should, and only that."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import SessionFactory
from app.models import (
    AgentConfigOperation,
    AgentScope,
    AgentStatus,
    Run,
    RunEvent,
    RunStatus,
    Tenant,
)
from tests.models.rows import (
    add_agent,
    add_api_key,
    add_binding,
    add_revision,
    add_run,
    add_runtime_session,
    add_snapshot,
    add_tenant,
)

# Each case inserts a row, then a second one that collides with it on one unique constraint.
DuplicateCase = Callable[[AsyncSession, Tenant], Awaitable[None]]


async def _tenant_name(session: AsyncSession, tenant: Tenant) -> None:
    await add_tenant(session, name=tenant.name)


async def _api_key_hash(session: AsyncSession, tenant: Tenant) -> None:
    key = await add_api_key(session, tenant)
    other_tenant = await add_tenant(session)
    await add_api_key(session, other_tenant, key_hash=key.key_hash)


async def _active_roster_agent_name(session: AsyncSession, tenant: Tenant) -> None:
    await add_agent(session, tenant, name="writer")
    await add_agent(session, tenant, name="writer")


async def _snapshot_version(session: AsyncSession, tenant: Tenant) -> None:
    agent = await add_agent(session, tenant)
    await add_snapshot(session, agent, version=1)
    await add_snapshot(session, agent, version=1)


async def _revision_number(session: AsyncSession, tenant: Tenant) -> None:
    agent = await add_agent(session, tenant)
    first = await add_snapshot(session, agent, version=1)
    second = await add_snapshot(session, agent, version=2)
    await add_revision(session, first, revision=1)
    await add_revision(
        session,
        second,
        revision=1,
        previous_snapshot_id=first.id,
        operation=AgentConfigOperation.SAVE_NEW_VERSION,
    )


async def _binding_scope(session: AsyncSession, tenant: Tenant) -> None:
    agent = await add_agent(session, tenant)
    other_agent = await add_agent(session, tenant, name="other")
    await add_binding(session, agent, app_id="app-1")
    await add_binding(session, other_agent, app_id="app-2")


async def _runtime_session_scope(session: AsyncSession, tenant: Tenant) -> None:
    await add_runtime_session(session, tenant, node_execution_id="execution-1")
    await add_runtime_session(session, tenant, node_execution_id="execution-2")


async def _run_idempotency_key(session: AsyncSession, tenant: Tenant) -> None:
    await add_run(session, tenant, idempotency_key="order-42")
    await add_run(session, tenant, idempotency_key="order-42")


@pytest.mark.parametrize(
    "insert_duplicate",
    [
        _tenant_name,
        _api_key_hash,
        _active_roster_agent_name,
        _snapshot_version,
        _revision_number,
        _binding_scope,
        _runtime_session_scope,
        _run_idempotency_key,
    ],
    ids=lambda case: case.__name__.lstrip("_"),
)
async def test_a_unique_constraint_refuses_its_duplicate(
    session_factory: SessionFactory, insert_duplicate: DuplicateCase
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        await session.commit()
        with pytest.raises(IntegrityError):
            await insert_duplicate(session, tenant)


async def test_the_same_scope_in_another_tenant_is_not_a_duplicate(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        for tenant in (await add_tenant(session), await add_tenant(session)):
            agent = await add_agent(session, tenant, name="writer")
            await add_binding(session, agent)
            await add_runtime_session(session, tenant)
            await add_run(session, tenant, idempotency_key="order-42")
        await session.commit()


async def test_runs_without_an_idempotency_key_never_collide(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        for _ in range(3):
            await add_run(session, tenant, idempotency_key=None)
        await session.commit()
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(Run).where(Run.idempotency_key.is_(None))
        )
    assert count == 3


async def test_archiving_a_roster_agent_frees_its_name(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        old = await add_agent(session, tenant, name="writer")
        old.status = AgentStatus.ARCHIVED
        old.archived_at = datetime.now(UTC)
        await session.flush()
        await add_agent(session, tenant, name="writer")
        # A second archived "writer" is fine too: only active roster agents hold names.
        await add_agent(session, tenant, name="writer", status=AgentStatus.ARCHIVED)
        await session.commit()


async def test_a_workflow_only_agent_may_share_a_roster_agents_name(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        await add_agent(session, tenant, name="writer")
        await add_agent(session, tenant, name="writer", scope=AgentScope.WORKFLOW_ONLY)
        await add_agent(session, tenant, name="writer", scope=AgentScope.WORKFLOW_ONLY)
        await session.commit()


async def test_unarchiving_into_a_taken_name_is_refused(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        archived = await add_agent(session, tenant, name="writer", status=AgentStatus.ARCHIVED)
        await add_agent(session, tenant, name="writer")
        await session.commit()
        archived.status = AgentStatus.ACTIVE
        with pytest.raises(IntegrityError):
            await session.flush()


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("runs", "status"),
        ("runs", "purpose"),
        ("agents", "scope"),
        ("agents", "icon_type"),
        ("api_keys", "role"),
        ("workflow_agent_runtime_sessions", "status"),
    ],
)
async def test_a_check_constraint_refuses_an_unknown_enum_value(
    session_factory: SessionFactory, table: str, column: str
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        agent = await add_agent(session, tenant)
        run = await add_run(session, tenant)
        key = await add_api_key(session, tenant)
        runtime_session = await add_runtime_session(session, tenant)
        await session.commit()
        row_id = {
            "runs": run.id,
            "agents": agent.id,
            "api_keys": key.id,
            "workflow_agent_runtime_sessions": runtime_session.id,
        }[table]
        # Raw SQL: the ORM type would refuse the value before the database sees it.
        statement = sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id").bindparams(
            sa.bindparam("id", type_=sa.Uuid())
        )
        with pytest.raises(IntegrityError):
            await session.execute(statement, {"value": "bogus", "id": row_id})


async def test_the_orm_refuses_an_unknown_enum_value_before_sending_it(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        with pytest.raises(StatementError, match="bogus"):
            await add_run(session, tenant, status="bogus")


async def test_the_orm_accepts_a_member_value_given_as_plain_text(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        run = await add_run(session, tenant, status="running")
        await session.commit()
    async with session_factory() as session:
        stored = await session.get_one(Run, run.id)
    assert stored.status is RunStatus.RUNNING


async def test_event_seq_is_unique_per_run_and_events_go_with_their_run(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        tenant_id, run_id = tenant.id, (await add_run(session, tenant)).id
        other_id = (await add_run(session, tenant)).id
        for target in (run_id, other_id):
            session.add(RunEvent(run_id=target, seq=1, tenant_id=tenant_id, type="run_queued"))
        await session.commit()

        session.add(RunEvent(run_id=run_id, seq=1, tenant_id=tenant_id, type="run_started"))
        with pytest.raises(IntegrityError):
            await session.flush()
        await session.rollback()

        await session.execute(sa.delete(Run).where(Run.id == run_id))
        await session.commit()
        remaining = (await session.scalars(sa.select(RunEvent.run_id))).all()
    assert remaining == [other_id]
