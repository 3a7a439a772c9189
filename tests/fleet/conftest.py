"""Fixtures for tests that start real Strata processes on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import text

from app.db import create_engine, read_only
from tests.api_fixtures import create_key
from tests.db_fixtures import run_coroutine_blocking
from tests.fleet.processes import Fleet


@pytest.fixture
def fleet(database_url: str, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(database_url=database_url, directory=tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop_all()


@pytest.fixture
def key(database_url: str) -> str:
    return create_key(database_url, "t1").key


def query(database_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of the read-only `sql` against the test database, as dicts (a short-lived engine).

    Read-only, so on SQLite it never takes the write lock (`BEGIN IMMEDIATE` would wait behind
    the fleet's writers and fail with "database is locked" on a busy machine)."""

    async def _query() -> list[dict[str, Any]]:
        engine = create_engine(database_url)
        try:
            async with read_only(engine).connect() as connection:
                result = await connection.execute(text(sql), params)
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    return run_coroutine_blocking(_query)


def client(base_url: str, key: str) -> httpx2.Client:
    return httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
