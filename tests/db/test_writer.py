"""The one write path (`Database.write`): every write commits exactly once, in order; writers
group queued writes into one transaction (SQLite: one writer; PostgreSQL: several), a failing or
cancelled caller costs nobody else anything, and readers never wait."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, create_session_factory, read_only, sqlite_file, unit_of_work
from app.models import Tenant
from app.notifier import LocalNotifier, create_notifier, notify
from tests.db_fixtures import DB_BACKEND

sqlite_only = pytest.mark.skipif(DB_BACKEND != "sqlite", reason="SQLite's writer")


async def _add_tenant(session: AsyncSession, name: str) -> str:
    session.add(Tenant(name=name))
    await session.flush()
    notify(session, f"tenant:{name}")
    return name


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Tenant)) or 0)


async def test_many_concurrent_writes_all_commit(db: Database) -> None:
    async with asyncio.timeout(20):
        names = await asyncio.gather(*(db.write(_add_tenant, f"t{i}") for i in range(40)))

    assert names == [f"t{i}" for i in range(40)]
    assert await db.read(_count) == 40
    # group commit: far fewer transactions than writes
    assert db.jobs == 40
    assert db.batches < 10
    assert db.batch_reruns == 0  # no job failed: each batch ran once, without savepoints


async def test_a_writer_opens_its_connection_again_after_losing_it(database_url: str) -> None:
    db = Database(database_url, create_notifier(database_url), writers=1)
    await db.start()
    try:
        await db.write(_add_tenant, "before")
        (connection,) = db._writer_connections  # kept for its batches
        assert connection is not None
        await connection.invalidate()  # as a server restart or a broken socket leaves it

        assert await db.write(_add_tenant, "after") == "after"

        assert db._writer_connections[0] is not connection
        assert await db.read(_count) == 2
    finally:
        await db.close()


async def test_a_failing_write_rolls_back_alone_and_its_caller_gets_the_error(
    db: Database,
) -> None:
    await db.write(_add_tenant, "taken")

    async with db.notifier.subscribe("tenant:taken", "tenant:ok-1", "tenant:ok-2") as wake:
        results = await asyncio.gather(
            db.write(_add_tenant, "ok-1"),
            db.write(_add_tenant, "taken"),  # unique name: fails
            db.write(_add_tenant, "ok-2"),
            return_exceptions=True,
        )
        assert await wake.wait(1)
        _payloads, needs_read = wake.take_payloads()

    assert results[0] == "ok-1"
    assert isinstance(results[1], IntegrityError)
    assert results[2] == "ok-2"
    assert await db.read(_count) == 3
    assert needs_read  # the committed writes notified
    # one batch: run without savepoints, rolled back, run again with them
    assert (db.batches, db.jobs, db.batch_reruns) == (2, 4, 1)


async def test_a_caller_cancelled_while_it_waits_neither_leaks_nor_stalls_the_writer(
    db: Database,
) -> None:
    tasks = [asyncio.create_task(db.write(_add_tenant, f"c{i}")) for i in range(20)]
    for task in tasks[::2]:
        task.cancel()  # before the writer had a turn: these writes never start
    results = await asyncio.gather(*tasks, return_exceptions=True)

    cancelled = [r for r in results if isinstance(r, asyncio.CancelledError)]
    assert len(cancelled) == 10
    assert await db.read(_count) == 10
    # the writer still serves, at once
    async with asyncio.timeout(5):
        assert await db.write(_add_tenant, "after") == "after"
    assert await db.read(_count) == 11


async def test_a_caller_cancelled_during_its_write_leaves_it_whole_and_the_next_write_works(
    db: Database,
) -> None:
    # The writer finishes the batch: the write commits, like a request whose client left after
    # the commit.
    started = asyncio.Event()

    async def slow_write(session: AsyncSession) -> None:
        session.add(Tenant(name="slow"))
        await session.flush()
        started.set()
        await asyncio.sleep(0.2)

    task = asyncio.create_task(db.write(slow_write))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with asyncio.timeout(5):
        await db.write(_add_tenant, "next")
    # PostgreSQL: another writer may commit "next" while the first one still finishes "slow"
    for _ in range(100):
        if await db.read(_count) == 2:
            break
        await asyncio.sleep(0.05)
    assert await db.read(_count) == 2


@sqlite_only
async def test_a_lock_held_by_another_process_is_waited_for_without_blocking_the_loop(
    db: Database,
) -> None:
    holder = sqlite3.connect(sqlite_file(db.url), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.6, holder.rollback)
    release.start()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    tick = asyncio.create_task(ticker())
    try:
        started = time.monotonic()
        await db.write(_add_tenant, "after-lock")
        waited = time.monotonic() - started
    finally:
        tick.cancel()
        release.join()
        holder.close()

    assert waited >= 0.5  # it waited for the other process…
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.3  # …while the event loop kept running
    assert await db.read(_count) == 1


@sqlite_only
async def test_a_write_outside_the_writers_waits_for_a_lock_held_elsewhere(
    database_url: str,
) -> None:
    # a command-line tool's writes (no writers started) next to a server holding the lock
    db = Database(database_url, LocalNotifier())
    holder = sqlite3.connect(sqlite_file(db.url), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.6, holder.rollback)
    release.start()
    try:
        started = time.monotonic()
        assert await db.write(_add_tenant, "cli") == "cli"
        waited = time.monotonic() - started
        assert await db.read(_count) == 1
    finally:
        release.join()
        holder.close()
        await db.close()

    assert waited >= 0.5  # refused busy after 100 ms at first; run again once the lock was free
    assert db.batches == 0  # it was not a writer's batch


@sqlite_only
async def test_readers_do_not_wait_for_a_writer(engine: Any) -> None:
    writers = create_session_factory(engine)
    readers = create_session_factory(read_only(engine))
    async with unit_of_work(writers) as writing:
        writing.add(Tenant(name="pending"))
        await writing.flush()  # the write transaction is open
        async with asyncio.timeout(5), readers() as reading:
            count = await reading.scalar(text("SELECT count(*) FROM tenants"))
        assert count == 0  # it reads the last committed state, without waiting


@pytest.mark.postgres_only  # SQLite has no pool to wait for: every write goes to its writer
async def test_a_reserved_write_commits_while_every_pooled_connection_is_taken(
    database_url: str,
) -> None:
    # The worker's heartbeat writes through `write_reserved`: with the pool held by others (on
    # PostgreSQL, hundreds of runs ending at once), it must neither wait nor fail.
    db = Database(database_url, create_notifier(database_url), pool_size=1, connect_timeout=1)
    await db.start()
    try:
        async with db.session_factory() as holder, holder.begin():
            await holder.execute(text("SELECT 1"))  # holds the pool's only connection
            async with asyncio.timeout(10):
                assert await db.write_reserved(_add_tenant, "heartbeat") == "heartbeat"
        assert await db.read(_count) == 1
    finally:
        await db.close()


async def _rename_tenant(session: AsyncSession, name: str, new_name: str) -> None:
    await session.execute(update(Tenant).where(Tenant.name == name).values(name=new_name))


@pytest.mark.postgres_only  # SQLite's one writer waits for the lock: the test above
async def test_a_batch_waiting_on_a_row_lock_does_not_hold_up_other_writes(
    db: Database,
) -> None:
    await db.write(_add_tenant, "locked")
    async with db.session_factory() as holder, holder.begin():
        # another transaction (another process, in production) holds the row's lock
        await holder.execute(select(Tenant).where(Tenant.name == "locked").with_for_update())
        blocked = asyncio.create_task(db.write(_rename_tenant, "locked", "renamed"))
        await asyncio.sleep(0.2)
        assert not blocked.done()  # its writer waits for the lock…
        async with asyncio.timeout(5):  # …while another writer commits the next writes
            assert await db.write(_add_tenant, "free") == "free"
        assert not blocked.done()
    async with asyncio.timeout(5):
        await blocked
    async with db.reading() as session:
        names = set((await session.scalars(select(Tenant.name))).all())
    assert names == {"renamed", "free"}


async def _rename_both(session: AsyncSession) -> str:
    await session.execute(update(Tenant).where(Tenant.name == "a").values(name="a"))
    await session.execute(update(Tenant).where(Tenant.name == "b").values(name="b2"))
    return "renamed"


@pytest.mark.postgres_only  # SQLite has one writer and locks the whole database: no deadlock
async def test_a_batch_aborted_to_break_a_deadlock_runs_again_and_its_caller_gets_the_result(
    db: Database,
) -> None:
    await db.write(_add_tenant, "a")
    await db.write(_add_tenant, "b")
    async with db.session_factory() as other, other.begin():
        # another process's transaction holds b …
        await other.execute(select(Tenant).where(Tenant.name == "b").with_for_update())
        # … the batch takes a and waits for b …
        renaming = asyncio.create_task(db.write(_rename_both))
        await asyncio.sleep(0.3)
        assert not renaming.done()
        # … and the other waits for a: a deadlock. The batch waited first, so its
        # deadlock_timeout ends first and PostgreSQL aborts it; the other goes on.
        async with asyncio.timeout(10):
            await other.execute(update(Tenant).where(Tenant.name == "a").values(name="a"))
    async with asyncio.timeout(10):
        assert await renaming == "renamed"
    async with db.reading() as session:
        names = set((await session.scalars(select(Tenant.name))).all())
    assert names == {"a", "b2"}


async def _refuse(session: AsyncSession) -> str:
    raise ValueError("refused")


@pytest.mark.postgres_only
async def test_a_deadlock_while_a_batch_runs_again_in_savepoints_runs_it_again_too(
    database_url: str,
) -> None:
    """A batch runs again with a savepoint per job after one of its jobs failed; when PostgreSQL
    then aborts another job's statement to break a deadlock, that job is run again like any
    batch chosen to break one, instead of its caller getting the deadlock error."""
    db = Database(database_url, create_notifier(database_url), writers=1)  # one batch for both
    await db.start()
    try:
        await db.write(_add_tenant, "a")
        await db.write(_add_tenant, "b")
        async with db.session_factory() as other, other.begin():
            await other.execute(select(Tenant).where(Tenant.name == "b").with_for_update())
            # first without savepoints: _refuse fails, the batch runs again in savepoints, and
            # there _rename_both takes a and waits for b …
            refused = asyncio.ensure_future(db.write(_refuse))
            renaming = asyncio.ensure_future(db.write(_rename_both))
            await asyncio.sleep(0.5)
            assert not renaming.done()
            assert db.batch_reruns == 1
            # … and the other waits for a: PostgreSQL aborts the batch's statement.
            async with asyncio.timeout(10):
                await other.execute(update(Tenant).where(Tenant.name == "a").values(name="a"))
        async with asyncio.timeout(10):
            assert await renaming == "renamed"
        with pytest.raises(ValueError, match="refused"):
            await refused
        assert set(await db.read(_names)) == {"a", "b2"}
    finally:
        await db.close()


async def _names(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(Tenant.name))).all())
