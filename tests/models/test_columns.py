"""Column behaviour that must be the same on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError

from app.db import SessionFactory
from app.models import (
    Agent,
    AgentIconType,
    Base,
    Run,
    RunPurpose,
    RunStatus,
    Tenant,
    new_id,
)
from tests.models.rows import add_agent, add_run, add_tenant


async def test_timestamps_come_back_timezone_aware_in_utc(session_factory: SessionFactory) -> None:
    tokyo = timezone(timedelta(hours=9))
    cancel_time = datetime(2026, 11, 22, 18, 30, 15, 123456, tzinfo=tokyo)
    async with session_factory() as session:
        tenant = await add_tenant(session)
        run = await add_run(session, tenant, cancel_requested_at=cancel_time)
        await session.commit()

    async with session_factory() as session:
        stored = await session.get_one(Run, run.id)
        core_row = (
            await session.execute(
                sa.select(Run.created_at, Run.cancel_requested_at, Run.started_at)
            )
        ).one()

    assert stored.cancel_requested_at == cancel_time
    assert stored.cancel_requested_at is not None
    assert stored.cancel_requested_at.utcoffset() == timedelta(0)
    assert stored.cancel_requested_at.hour == 9  # 18:30 in Tokyo is 09:30 UTC
    for value in (stored.created_at, stored.updated_at, stored.queued_at, *core_row[:2]):
        assert value is not None
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
    assert core_row.started_at is None


async def test_timestamps_compare_in_time_order_in_queries(
    session_factory: SessionFactory,
) -> None:
    base = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    async with session_factory() as session:
        tenant = await add_tenant(session)
        for minutes in (30, 5, 90):
            await add_run(
                session,
                tenant,
                request_fingerprint=str(minutes),
                # Same instants written in another zone: the database must order by instant.
                queued_at=(base + timedelta(minutes=minutes)).astimezone(
                    timezone(-timedelta(hours=5))
                ),
            )
        await session.commit()
        due = await session.scalars(
            sa.select(Run.request_fingerprint)
            .where(Run.queued_at < base + timedelta(hours=1))
            .order_by(Run.queued_at)
        )
        assert due.all() == ["5", "30"]


async def test_a_naive_timestamp_is_refused(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        with pytest.raises(StatementError, match="naive datetime"):
            await add_run(session, tenant, cancel_requested_at=datetime(2026, 11, 22, 12, 0))


async def test_ids_are_uuid7_and_ordered_by_creation(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        created = []
        for index in range(20):
            tenant = await add_tenant(session, name=f"tenant-{index:02d}")
            created.append(tenant.id)
        await session.commit()
        by_id = (await session.scalars(sa.select(Tenant.id).order_by(Tenant.id))).all()
    assert all(isinstance(value, uuid.UUID) and value.version == 7 for value in created)
    assert by_id == created


def test_new_ids_are_monotonic_and_carry_the_current_time() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    milliseconds = int.from_bytes(ids[-1].bytes[:6], "big")
    embedded = datetime.fromtimestamp(milliseconds / 1000, UTC)
    assert abs(datetime.now(UTC) - embedded) < timedelta(seconds=5)


async def test_defaults_describe_a_new_queued_agent_run(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        run = await add_run(session, tenant)
        await session.commit()
    async with session_factory() as session:
        stored = await session.get_one(Run, run.id)
    assert stored.status is RunStatus.QUEUED
    assert stored.purpose is RunPurpose.AGENT
    assert (stored.attempt, stored.max_attempts, stored.last_event_seq) == (1, 1, 0)
    assert stored.inputs == {}
    assert stored.metadata_ == {}
    assert stored.queued_at is not None


async def test_server_defaults_fill_rows_written_in_plain_sql(
    session_factory: SessionFactory,
) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        await session.commit()
        run_id = new_id()
        now = datetime.now(UTC)
        insert = sa.insert(Base.metadata.tables["runs"]).values(  # only the required columns
            id=run_id,
            tenant_id=tenant.id,
            composition={"layers": []},
            inputs={},
            request_fingerprint="f" * 64,
            metadata={},
            created_at=now,
            queued_at=now,
            updated_at=now,
        )
        await session.execute(insert)
        await session.commit()
        row = (
            await session.execute(
                sa.select(
                    Run.status, Run.purpose, Run.attempt, Run.max_attempts, Run.last_event_seq
                ).where(Run.id == run_id)
            )
        ).one()
    assert tuple(row) == (RunStatus.QUEUED, RunPurpose.AGENT, 1, 1, 0)


async def test_updated_at_moves_on_every_update(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        run = await add_run(session, tenant)
        await session.commit()
        created_at, first_update = run.created_at, run.updated_at

        run.status = RunStatus.RUNNING
        await session.commit()
        after_orm_update = run.updated_at

        await session.execute(
            sa.update(Run).where(Run.id == run.id).values(status=RunStatus.SUCCEEDED)
        )
        await session.commit()
        after_core_update = await session.scalar(sa.select(Run.updated_at).where(Run.id == run.id))
    assert after_core_update is not None
    assert created_at <= first_update < after_orm_update < after_core_update


async def test_enum_columns_read_back_their_members(session_factory: SessionFactory) -> None:
    async with session_factory() as session:
        tenant = await add_tenant(session)
        agent = await add_agent(session, tenant, icon_type=AgentIconType.EMOJI, icon="🤖")
        plain = await add_agent(session, tenant, name="plain")
        await session.commit()
    async with session_factory() as session:
        stored = await session.get_one(Agent, agent.id)
        stored_plain = await session.get_one(Agent, plain.id)
    assert stored.icon_type is AgentIconType.EMOJI
    assert stored_plain.icon_type is None
    assert stored.agent_kind == "strata_agent"
    assert stored.description == ""


async def test_json_none_is_sql_null_and_json_values_round_trip(
    session_factory: SessionFactory,
) -> None:
    composition = {"schema_version": 1, "layers": [{"name": "llm", "type": "llm.test"}]}
    async with session_factory() as session:
        tenant = await add_tenant(session)
        empty = await add_run(session, tenant, output=None, usage=None)
        text = await add_run(session, tenant, output="plain text", composition=composition)
        await session.commit()
        null_outputs = await session.scalars(sa.select(Run.id).where(Run.output.is_(None)))
        assert null_outputs.all() == [empty.id]
    async with session_factory() as session:
        stored = await session.get_one(Run, text.id)
    assert stored.output == "plain text"
    assert stored.composition == composition
