"""Database fixtures: every test gets its own migrated database, on SQLite or PostgreSQL.

The backend is chosen once per session: PostgreSQL when `STRATA_TEST_DATABASE_URL` names a
PostgreSQL database (e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/strata_test`), otherwise
SQLite files in pytest's temporary directory.

- `database_url_template` (session): migrates once. SQLite: a template file that every test
  copies. PostgreSQL: drops every table of the test database, then upgrades to head.
- `database_url` (function): an isolated, migrated, empty database. SQLite: a fresh copy of the
  template (a file copy, much faster than migrating). PostgreSQL: the shared test database with
  every table truncated before the test (in case an earlier run crashed) and after it, so one
  PostgreSQL test database serves one pytest session at a time.
- `engine` / `session_factory` (function): built with `app.db`, so tests get the same
  per-dialect settings as the service; the engine is disposed after the test.
- `db_backend`: `"sqlite"` or `"postgresql"`. Tests marked `@pytest.mark.postgres_only` are skipped
  on SQLite.

The migration helpers of `app.migrate` run their own event loop (`asyncio.run`), so the fixtures
call them, and any other blocking database work, on a separate thread (`run_blocking`): that never
touches the event loop pytest-asyncio keeps for the test thread.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import SessionFactory, create_engine, create_session_factory
from app.migrate import upgrade_to_head

TEST_DATABASE_URL_VARIABLE = "STRATA_TEST_DATABASE_URL"

DbBackend = Literal["sqlite", "postgresql"]
T = TypeVar("T")


def _configured_postgres_url() -> str | None:
    url = os.environ.get(TEST_DATABASE_URL_VARIABLE) or None
    if url is not None and make_url(url).get_backend_name() != "postgresql":
        raise pytest.UsageError(
            f"{TEST_DATABASE_URL_VARIABLE} must name a PostgreSQL database "
            "(postgresql+asyncpg://…); leave it unset to test on SQLite"
        )
    return url


POSTGRES_URL = _configured_postgres_url()
DB_BACKEND: DbBackend = "postgresql" if POSTGRES_URL else "sqlite"


def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """Call `function(*args)` on a new thread and return its result (or raise its error).

    For code that runs its own event loop (`app.migrate`), called from a fixture or a sync test.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function(*args))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="strata-test-db")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_coroutine_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine made by `factory` to completion on its own thread and event loop."""
    return run_blocking(lambda: asyncio.run(factory()))


# --- PostgreSQL helpers ---------------------------------------------------------------------------


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _user_tables(connection: asyncpg.Connection) -> list[str]:
    rows = await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
    )
    return [row["tablename"] for row in rows]


def _quoted(tables: list[str]) -> str:
    return ", ".join('"' + table.replace('"', '""') + '"' for table in tables)


async def _drop_all_tables(url: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        tables = await _user_tables(connection)
        if tables:
            await connection.execute(f"DROP TABLE IF EXISTS {_quoted(tables)} CASCADE")
    finally:
        await connection.close()


async def _truncate_all_tables(url: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        # A test that leaked an open transaction would make TRUNCATE wait forever; fail instead.
        await connection.execute("SET lock_timeout = '10s'")
        tables = [t for t in await _user_tables(connection) if t != "alembic_version"]
        if tables:
            await connection.execute(f"TRUNCATE {_quoted(tables)} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


def reset_postgres_database(url: str) -> None:
    """Drop every table of the PostgreSQL database at `url` (blocking)."""
    run_coroutine_blocking(lambda: _drop_all_tables(url))


def truncate_postgres_database(url: str) -> None:
    """Empty every table except `alembic_version` (blocking)."""
    run_coroutine_blocking(lambda: _truncate_all_tables(url))


# --- SQLite helpers -------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    assert database, url
    return Path(database)


def _fold_wal_into_main_file(path: Path) -> None:
    # Fold the write-ahead log into the main file so the template is one self-contained file
    # to copy. The file stays in WAL mode (a property of the file), so the copies need no
    # journal-mode switch when the app opens them, which would race between connections.
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


# --- fixtures -------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DB_BACKEND == "postgresql":
        return
    skip = pytest.mark.skip(reason=f"PostgreSQL only: set {TEST_DATABASE_URL_VARIABLE}")
    for item in items:
        if item.get_closest_marker("postgres_only") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def db_backend() -> DbBackend:
    """Which database this session tests against."""
    return DB_BACKEND


@pytest.fixture(scope="session")
def database_url_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a database migrated to head once per session (see the module docstring)."""
    if POSTGRES_URL is not None:
        reset_postgres_database(POSTGRES_URL)
        run_blocking(upgrade_to_head, POSTGRES_URL)
        return POSTGRES_URL
    path = tmp_path_factory.mktemp("database-template") / "template.db"
    url = sqlite_url(path)
    run_blocking(upgrade_to_head, url)
    _fold_wal_into_main_file(path)
    return url


@pytest.fixture
def database_url(database_url_template: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an isolated, migrated, empty database for this test."""
    if DB_BACKEND == "postgresql":
        truncate_postgres_database(database_url_template)
        yield database_url_template
        truncate_postgres_database(database_url_template)
        return
    path = tmp_path / "strata.db"
    shutil.copyfile(sqlite_path(database_url_template), path)
    yield sqlite_url(path)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on this test's database, made by `app.db.create_engine`; disposed afterwards."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> SessionFactory:
    """`app.db.create_session_factory` over this test's engine."""
    return create_session_factory(engine)
