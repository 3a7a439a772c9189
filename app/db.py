"""Engine and session factories, and the one transaction boundary.

`create_engine` applies the per-dialect settings Strata relies on: on SQLite, WAL mode, a busy
timeout and foreign keys on every connection, and `BEGIN IMMEDIATE` for every transaction so that
writers serialize at the start of a transaction instead of failing on lock upgrade (this is what
makes claiming runs correct on SQLite, which has no `SKIP LOCKED`). On PostgreSQL, a bounded pool
with pre-ping so a restarted server is noticed.

`read_only(engine)` gives the engine for sessions that only read (deferred transactions on SQLite).
`unit_of_work` is the one commit point: it yields a session, commits when the block succeeds and
rolls back when it raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(url: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> AsyncEngine:
    """Create an async engine for `url` with Strata's per-dialect settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            hide_parameters=True,  # error messages must not quote row values (logs)
            connect_args={"timeout": 30, "isolation_level": None},
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        hide_parameters=True,  # error messages must not quote row values (logs)
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=connect_timeout,
        connect_args={"timeout": connect_timeout},
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # WAL is a property of the file: switch only when needed, since switching needs the
        # file to itself and fails ("database is locked") while other connections are open.
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # pysqlite's own transaction handling is off (isolation_level=None). Write transactions
        # start as BEGIN IMMEDIATE so concurrent writers queue on the busy timeout instead of
        # failing on a lock upgrade; read-only sessions (see `read_only`) start a deferred
        # transaction, which in WAL mode never blocks and is never blocked by a writer.
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


_READ_ONLY = "strata_read_only"


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) for sessions that only read.

    On SQLite their transactions are deferred, so a long read (a wait, an event stream) holds no
    write lock. On PostgreSQL it changes nothing.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def is_database_unavailable(error: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now" (retry later).

    Connection refused or reset, a server that is starting or shutting down, a pool that could
    not hand out a connection in time: SQLAlchemy wraps these as `OperationalError` or
    `InterfaceError` (or flags `connection_invalidated`); some surface as plain `OSError`.
    """
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError | OSError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """Yield a session; commit when the block returns, roll back when it raises."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
