"""SQLite: concurrent write transactions serialize and all commit; readers never wait."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from app.db import SessionFactory, create_session_factory, read_only, unit_of_work
from app.models import Tenant
from tests.db_fixtures import DB_BACKEND

pytestmark = pytest.mark.skipif(DB_BACKEND != "sqlite", reason="SQLite transaction modes")


async def test_many_concurrent_write_transactions_all_commit(
    session_factory: SessionFactory,
) -> None:
    async def write(index: int) -> None:
        async with unit_of_work(session_factory) as session:
            session.add(Tenant(name=f"t{index}"))
            await session.flush()
            await asyncio.sleep(0)  # hold the transaction across a loop turn

    async with asyncio.timeout(20):
        await asyncio.gather(*(write(i) for i in range(40)))

    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Tenant)) == 40


async def test_readers_do_not_wait_for_a_writer(engine) -> None:  # type: ignore[no-untyped-def]
    writers = create_session_factory(engine)
    readers = create_session_factory(read_only(engine))
    async with unit_of_work(writers) as writing:
        writing.add(Tenant(name="pending"))
        await writing.flush()  # the write transaction is open
        async with asyncio.timeout(5), readers() as reading:
            count = await reading.scalar(text("SELECT count(*) FROM tenants"))
        assert count == 0  # it reads the last committed state, without waiting
