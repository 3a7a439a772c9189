"""Fixtures of the database tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.db import Database
from app.notifier import create_notifier


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A started `Database` (writers and notifier) on this test's database."""
    database = Database(database_url, create_notifier(database_url))
    await database.start()
    await database.notifier.start()
    try:
        yield database
    finally:
        await database.notifier.close()
        await database.close()
