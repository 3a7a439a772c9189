"""Engines, sessions and the one write path: `Database.write`.

Every write transaction of the service goes through `Database.write(job, *args)`: `job` is an
async function taking an `AsyncSession` first; it runs inside a transaction that commits when it
returns and rolls back when it raises. Notifications the job recorded (`app.notifier.notify`,
`hand_off`) are delivered after the commit and dropped on rollback (on PostgreSQL they also go to
the other processes, as one `pg_notify` inside the transaction). Reads use `Database.reading()`,
a session that never writes.

**Group commit, on both databases.** Every write of the process is a job on one queue, served
by writer tasks. A writer takes every queued job (up to `_MAX_BATCH`), runs them back to back in
one transaction, each in a SAVEPOINT of its own only when one of them fails (see
`_commit_batch`), sends the batch's notifications, commits, then resolves every caller. A burst
of N writes costs one commit instead of N. A caller cancelled while it waits just leaves: a job
that has not started is skipped, one that ran keeps its effect (like a request whose client went
away after the commit), and no writer ever waits for a caller. Jobs run in a writer's task: they
must not await anything but the database, nor call `write` themselves.

- **SQLite (the embedded default): one writer.** SQLite allows one writer at a time; letting
  concurrent transactions take turns through its busy handler (which sleeps and polls in no
  particular order) made the latency tail. The writer opens `BEGIN IMMEDIATE`, so nothing polls;
  another process holding the lock is waited for without blocking the loop. Reads use their own
  pooled connections with deferred transactions; in WAL mode they never wait for the writer.
  Jobs run on the event loop's thread (`app.sqlite_driver`).
- **PostgreSQL: `writers` tasks (`STRATA_DB_WRITERS`, default 4), each a transaction on a pooled
  connection.** A transaction per write cost five round trips (`BEGIN`, two statements,
  `pg_notify`, `COMMIT`), each a fraction of a millisecond of this process's CPU; a batch pays
  `BEGIN`, `COMMIT` and one `pg_notify` once (the side by side at c=32: 6.7 → 4.7 ms of CPU per
  run, bench/README.md). There are several writers, not one, because a PostgreSQL batch waits: on
  the network for each statement, and on row locks other processes hold (`FOR UPDATE` of a cancel,
  a sweep). A free writer takes what is queued meanwhile, so one slow batch never holds up the
  rest; batches of different writers run concurrently, with row locks and `SKIP LOCKED` keeping
  them apart like any concurrent transactions. Two batches that lock the same rows in opposite
  orders can deadlock; PostgreSQL aborts one of them after `deadlock_timeout` (1 s by default), and
  that batch runs again, whole, once the other has gone on (as a SQLite batch does when another
  process holds the lock). `write_reserved` runs on one more connection, outside the pool and the
  queue, for the worker's heartbeat: when hundreds of runs end at once their terminal writes queue
  up, and a heartbeat queued behind them would come late enough for another worker's sweeper to
  take this worker's runs as lost.

Each writer keeps one connection for its batches instead of taking one from the pool for each:
on SQLite a checkout and its return (with the pool's reset) were a sixth of the CPU of a
one-write batch (266 against 225 µs measured), and a run makes three writes.

`create_engine` applies the per-dialect settings Strata relies on. `hide_parameters=True`: a
failing statement's error text never carries bound values (run content) into logs. JSON columns
are encoded and decoded with orjson (several times faster than the standard library; it refuses
what no database should store, such as lone surrogates).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson
import structlog
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app import direct_sql
from app.direct_sql import RAW_TRANSACTION, bind_connection
from app.notifier import Notifier, Outbox, outbox, take_outbox
from app.storable import storable_dumps

log = structlog.get_logger("strata.db")

SessionFactory = async_sessionmaker[AsyncSession]
P = ParamSpec("P")
T = TypeVar("T")
Job = Callable[Concatenate[AsyncSession, P], Awaitable[T]]

_READ_ONLY = "strata_read_only"
_MAX_BATCH = 64
"""Jobs per SQLite transaction: enough to amortize the commit (measured: the gain flattens out
past a few dozen), few enough that one batch holds the event loop for milliseconds, not
hundreds of them (the writer yields to the loop between batches)."""
_BUSY_RETRY_SECONDS = 30.0


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> str:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("Strata needs a SQLite file, not an in-memory database")
    return database


def _json_dumps(value: Any) -> str:
    """JSON column values as text, as every database can store them (`app.storable`): NUL and
    unpaired surrogates become U+FFFD and integers beyond 64 bits their digits, which
    PostgreSQL's jsonb (NUL) and orjson (the rest) would refuse."""
    return storable_dumps(value).decode()


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    connect_timeout: float = 5.0,
    pre_ping: bool = False,
) -> AsyncEngine:
    """An async engine for `url` with Strata's per-dialect settings.

    SQLite: connections from `app.sqlite_driver` (calls run on the event loop's thread), and
    `BEGIN IMMEDIATE` for transactions that may write, `BEGIN` for read-only ones (`read_only`).
    PostgreSQL: a fixed pool of `pool_size` connections; a connection broken by a server
    restart fails its statement once (503) and the pool is invalidated, so no round trip per
    checkout is spent on a ping (`pre_ping` turns it on).
    """
    if is_sqlite_url(url):
        from app.sqlite_driver import async_creator

        engine = create_async_engine(
            url,
            async_creator=async_creator(sqlite_file(url)),
            pool_size=max(pool_size, 10),
            max_overflow=max(pool_size, 10) * 4,
            pool_timeout=connect_timeout,
            hide_parameters=True,  # error messages must not quote row values (logs)
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        # No overflow: a connection opened past the pool is closed again when returned, so a
        # load above the pool size paid a connect (TLS attempt, authentication, a server
        # process) per transaction; waiting for a pooled connection is far cheaper.
        max_overflow=0,
        pool_pre_ping=pre_ping,
        pool_timeout=connect_timeout,
        connect_args={"timeout": connect_timeout},
        hide_parameters=True,  # error messages must not quote row values (logs)
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # The driver's own transaction handling is off (isolation_level=None). A transaction that
        # may write takes the write lock up front (BEGIN IMMEDIATE), so it cannot fail later on a
        # lock upgrade; a read-only one is deferred, which in WAL mode never waits for a writer.
        if connection.info.get(RAW_TRANSACTION):
            return  # a writer's batch began it on the sqlite3 connection: join it
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) for sessions that only read.

    SQLite: deferred transactions (a read never waits for the writer). PostgreSQL: autocommit,
    each statement in its own implicit transaction: under READ COMMITTED every statement sees a
    fresh snapshot anyway, so a read-only session loses nothing, and saves the `BEGIN` and
    `ROLLBACK` round trips around every read.
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT", **{_READ_ONLY: True})
    return engine.execution_options(**{_READ_ONLY: True})


def is_database_unavailable(error: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now" (retry later).

    Connection refused or reset, a server that is starting or shutting down, a pool that could
    not hand out a connection in time, a SQLite file locked by another process for too long:
    SQLAlchemy wraps these as `OperationalError` or `InterfaceError` (or flags
    `connection_invalidated`); some surface as plain `OSError`.
    """
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError | OSError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    # asyncpg's "the database system is starting up / shutting down" (57P03 cannot_connect_now)
    # and an administrator's or a crash's shutdown (57P01, 57P02) arrive as a plain DBAPIError,
    # often while connecting, so nothing is invalidated: recognise them by their SQLSTATE.
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return True
    return error.connection_invalidated


_UNAVAILABLE_SQLSTATES = ("08", "57P")
"""SQLSTATE classes of a database that cannot serve now: 08 connection exceptions, 57P01-57P03
(shutting down, crashed, cannot connect now)."""


def is_busy(error: BaseException) -> bool:
    """SQLite's write lock is held by another connection (a busy `BEGIN IMMEDIATE`)."""
    return isinstance(error, OperationalError) and "locked" in str(error.orig).lower()


def _is_deadlock(error: BaseException | None) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock (SQLSTATE 40P01)."""
    return isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) == "40P01"


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def retry_while_busy(attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()`, run again while SQLite's write lock is held by another process.

    For a transaction that commits nothing when it fails busy (a SQLite `BEGIN IMMEDIATE` is
    refused before anything runs): a command-line tool, or a write outside the writers, next to
    a server whose writer holds the lock batch after batch. Each call waits at most
    `sqlite_driver.BUSY_TIMEOUT_MS` inside SQLite (it blocks the event loop); the retries
    sleep on the event loop, with the writers' backoff, for up to `_BUSY_RETRY_SECONDS`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _BUSY_RETRY_SECONDS
    delay = 0.005
    while True:
        try:
            return await attempt()
        except Exception as error:
            if not is_busy(error) or loop.time() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


@asynccontextmanager
async def unit_of_work(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """Yield a session; commit when the block returns, roll back when it raises.

    For command-line tools and tests. The service writes through `Database.write`.
    """
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    job: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class _JobFailed(Exception):
    """A job of a batch run without savepoints raised: the batch runs again with them."""


class Database:
    """The process's database access: `write` (the one write path) and `reading`."""

    def __init__(
        self,
        url: str,
        notifier: Notifier,
        *,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        writers: int = 4,
    ) -> None:
        self.url = url
        self.is_sqlite = is_sqlite_url(url)
        self.notifier = notifier
        self.engine = create_engine(url, pool_size=pool_size, connect_timeout=connect_timeout)
        self.session_factory = create_session_factory(self.engine)
        self.read_session_factory = create_session_factory(read_only(self.engine))
        self._reserved: AsyncEngine | None = None
        self._reserved_factory = self.session_factory
        if not self.is_sqlite:
            self._reserved = create_engine(url, pool_size=1, connect_timeout=connect_timeout)
            self._reserved_factory = create_session_factory(self._reserved)
        # PostgreSQL writers each keep a pooled connection for their batches: at most half the
        # pool, so reads always find connections too.
        self._writer_count = 1 if self.is_sqlite else max(1, min(writers, pool_size // 2))
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._writers: list[asyncio.Task[None]] = []
        self._checkpointer: Any = None
        # each writer's own connection, opened at its first batch
        self._writer_connections: list[AsyncConnection | None] = [None] * self._writer_count
        # each writer's session, kept between batches that leave nothing in it
        self._writer_sessions: list[AsyncSession | None] = [None] * self._writer_count
        self.batches = 0  # transactions the writers committed (for tests and metrics)
        self.jobs = 0  # jobs the writers ran
        self.batch_reruns = 0  # batches run again with a savepoint per job

    async def start(self) -> None:
        """Start the writer tasks (until then, and for command-line tools that never start
        them, each `write` is a transaction of its own in the caller's task)."""
        if self._writers:
            return
        if self.is_sqlite:
            from app.sqlite_driver import Checkpointer

            self._checkpointer = Checkpointer(sqlite_file(self.url))
            self._checkpointer.start()
        self._writers = [
            asyncio.create_task(self._write_forever(number), name=f"strata-writer-{number}")
            for number in range(self._writer_count)
        ]

    async def close(self) -> None:
        writers, self._writers = self._writers, []
        if writers:
            while self._queue:  # let queued writes commit before the writers go
                self._wake.set()
                await asyncio.sleep(0.01)
            for writer in writers:
                writer.cancel()
            for writer in writers:
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        for number in range(self._writer_count):
            await self._drop_writer_connection(number)
        await self.engine.dispose()
        if self._reserved is not None:
            await self._reserved.dispose()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; it never commits."""
        async with self.read_session_factory() as session:
            yield session

    async def read(self, job: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self.read_session_factory() as session:
            return await job(session, *args, **kwargs)

    async def write(self, job: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `job(session, *args, **kwargs)` in a write transaction; its result once committed.

        Raises what the job raised (nothing of it is committed), or the database error of the
        commit.
        """
        if not self._writers:
            return await self._write_alone(self.session_factory, job, *args, **kwargs)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(future, job, args, kwargs))
        self._wake.set()
        return await future

    async def write_reserved(self, job: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`write`, on PostgreSQL in a transaction of its own on a connection no other work
        waits for, outside the writers' queue (one caller at a time: the worker's heartbeat).
        SQLite: `write` (its one writer serves the queue in batches, and the heartbeat is one
        more job of one, not a transaction waiting its turn at a lock)."""
        if self._reserved is None:
            return await self.write(job, *args, **kwargs)
        return await self._write_alone(self._reserved_factory, job, *args, **kwargs)

    async def _write_alone(
        self, factory: SessionFactory, job: Job[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`job` in a transaction of its own, run again while SQLite is busy (another process,
        e.g. a server next to this command-line tool, holds the write lock)."""

        async def attempt() -> tuple[T, Outbox]:
            async with factory() as session, session.begin():
                result = await job(session, *args, **kwargs)
                box = take_outbox(session)
                await self.notifier.flush_outbox(session, box)
            return result, box

        result, box = await retry_while_busy(attempt)
        self.notifier.deliver(box)
        return result

    # --- the writers ----------------------------------------------------------------------------

    async def _write_forever(self, number: int) -> None:
        """One writer: wait for jobs, commit what is queued in batches. Several writers share
        the queue (PostgreSQL); whichever is free takes what is there."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
                batch = [item for item in batch if not item.future.done()]
                if batch:
                    try:
                        await self._commit_batch(batch, number)
                    except Exception as error:  # a bug here must not kill the writer
                        log.exception("writer_batch_failed", error_class=type(error).__name__)
                        for item in batch:
                            if not item.future.done():
                                item.future.set_exception(error)
                if self._queue:
                    await asyncio.sleep(0)  # let requests and waiters run between batches

    async def _commit_batch(self, batch: list[_Pending], number: int) -> None:
        """Run a batch's jobs in one transaction and commit it; settle each job's future.

        The jobs run one after the other without savepoints first (a SAVEPOINT and its RELEASE
        per job cost about a tenth of a busy writer's CPU, measured); when one of them raises,
        the whole transaction is rolled back and the batch runs again with a savepoint per job,
        so the failing job's writes are undone alone and the others commit. Jobs are
        functions of the session and their arguments, with no effect outside it before the
        commit, so running one twice is safe (a busy database retries batches the same way).
        """
        results: list[tuple[_Pending, bool, Any]] = []
        delivered = Outbox()
        deadline = asyncio.get_running_loop().time() + _BUSY_RETRY_SECONDS
        delay = 0.005
        isolate = False
        while True:
            try:
                session = await self._batch_session(number)
                try:
                    raw = direct_sql.begin(session)  # SQLite: on the sqlite3 connection
                    if not raw:
                        await session.begin()
                    try:
                        results = await self._run_jobs(session, batch, isolate=isolate)
                        delivered = take_outbox(session)
                        await self.notifier.flush_outbox(session, delivered)
                        await (direct_sql.end(session, commit=True) if raw else session.commit())
                    except BaseException:
                        take_outbox(session)
                        await (direct_sql.end(session, commit=False) if raw else session.rollback())
                        raise
                finally:
                    await self._end_batch_session(number, session)
                break
            except Exception as error:
                job_failed = isinstance(error, _JobFailed)
                cause = error.__cause__ if job_failed else error
                # Nothing of the batch was applied, and it can pass later: SQLite, another
                # *process* holds the write lock (a CLI command, a second server); PostgreSQL,
                # the batch was chosen to break a deadlock with another transaction (which
                # goes on). Run it again, whole, without blocking the event loop.
                retry = _is_deadlock(cause) or (
                    self.is_sqlite and not job_failed and is_busy(error)
                )
                if retry and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                if job_failed:
                    isolate = True  # run the batch again, each job in a savepoint
                    self.batch_reruns += 1
                    continue
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                return
        self.batches += 1
        self.jobs += len(batch)
        self.notifier.deliver(delivered)
        for item, ok, value in results:
            if item.future.done():
                continue
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

    async def _batch_session(self, number: int) -> AsyncSession:
        """A session for one batch of writer `number`, bound to the writer's own connection
        (opened again when it was closed or invalidated, e.g. by a PostgreSQL restart)."""
        connection = self._writer_connections[number]
        if connection is None or connection.closed or connection.invalidated:
            await self._drop_writer_connection(number)
            connection = await self.engine.connect()
            self._writer_connections[number] = connection
        kept = self._writer_sessions[number]
        if kept is not None and kept.bind is connection:
            return kept
        # not in a transaction between batches: the session's begin() is the connection's
        # (`BEGIN IMMEDIATE`), its commit and rollback end it
        session = AsyncSession(bind=connection, expire_on_commit=False, autoflush=False)
        if self.is_sqlite:
            bind_connection(session, connection)
        return session

    async def _end_batch_session(self, number: int, session: AsyncSession) -> None:
        """Close a batch's session, or keep it for the writer's next batch when the batch left
        nothing in it: no transaction, no ORM object, nothing in `info` but its connection.
        Creating and closing one per batch (SQLAlchemy closes in a shielded task) was 11 % of
        the CPU of a run at one client on SQLite, where a batch of direct statements never
        touches the session, and 2 to 3 % on PostgreSQL (measured in pairs, bench/README.md)."""
        sync = session.sync_session
        clean = not (
            session.in_transaction()
            or sync.identity_map
            or sync.new
            or sync.deleted
            or direct_sql.holds_more_than_its_connection(session)
        )
        if clean:
            self._writer_sessions[number] = session
            return
        self._writer_sessions[number] = None
        await session.close()

    async def _drop_writer_connection(self, number: int) -> None:
        connection, self._writer_connections[number] = self._writer_connections[number], None
        self._writer_sessions[number] = None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to hand back
                await connection.close()

    @staticmethod
    async def _run_jobs(
        session: AsyncSession, batch: list[_Pending], *, isolate: bool
    ) -> list[tuple[_Pending, bool, Any]]:
        """Each job's outcome. Not `isolate`: no savepoints, and a job's exception is raised
        (a lone job's as it is, for the caller; else as `_JobFailed`, to run it again).
        `isolate`: a job's exception becomes its outcome, except a deadlock, which is raised
        as it is so that `_commit_batch` runs the batch again (still with savepoints)."""
        results: list[tuple[_Pending, bool, Any]] = []
        if len(batch) == 1:  # no savepoint needed: a failure rolls back the whole transaction
            item = batch[0]
            results.append((item, True, await item.job(session, *item.args, **item.kwargs)))
            return results
        if not isolate:
            for item in batch:
                try:
                    value = await item.job(session, *item.args, **item.kwargs)
                except Exception as error:
                    raise _JobFailed from error
                results.append((item, True, value))
            return results
        for item in batch:
            mark = outbox(session).mark()
            try:
                async with session.begin_nested():
                    value = await item.job(session, *item.args, **item.kwargs)
                results.append((item, True, value))
            except Exception as error:
                if _is_deadlock(error):
                    raise  # not the job's failure: the batch runs again, whole, as any deadlock
                outbox(session).truncate(mark)
                results.append((item, False, error))
        return results


def dialect_insert(session: AsyncSession) -> Any:
    """The `insert` construct of this session's database (PostgreSQL's or SQLite's), which has
    `on_conflict_do_nothing` / `on_conflict_do_update`: first writers of a unique key then never
    fail on it, on both databases, without a savepoint and a retry."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert
