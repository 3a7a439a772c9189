"""Which database errors answer 503 `database_unavailable` (retry later) instead of a 500."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError

from app.db import is_database_unavailable

_DBAPI = AsyncAdapt_asyncpg_dbapi(asyncpg)


def _as_sqlalchemy_raises_it(error: Exception) -> DBAPIError:
    """The error as SQLAlchemy's asyncpg dialect hands it to the service."""
    adapted = _DBAPI.Error(str(error), error)
    return DBAPIError.instance("SELECT 1", {}, adapted, _DBAPI.Error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CrashShutdownError("terminating connection due to crash"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_server_that_is_shutting_down_or_starting_is_unavailable(error: Exception) -> None:
    wrapped = _as_sqlalchemy_raises_it(error)
    assert type(wrapped) is DBAPIError  # not an OperationalError: the SQLSTATE decides
    assert is_database_unavailable(wrapped)


def test_a_statement_error_is_not_unavailable() -> None:
    error = asyncpg.exceptions.UndefinedTableError('relation "nope" does not exist')
    assert not is_database_unavailable(_as_sqlalchemy_raises_it(error))
