"""The hot path's direct statements (`app.direct_sql`): on SQLite they run on the writer's sqlite3
connection and store and return exactly what SQLAlchemy's own execution does; everything else
goes through the session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app import direct_sql
from app.db import Database
from app.keys import get_or_create_tenant
from app.models import RunEvent, Tenant
from tests.api_fixtures import Api
from tests.db_fixtures import DB_BACKEND
from tests.normalize import without_ids_and_times
from tests.runs.bodies import chat


@pytest.fixture
def statements(api: Api) -> Iterator[list[tuple[str, bool]]]:
    """(SQL, direct) for every statement the app's engine sends (`direct`: no SQLAlchemy
    execution context, i.e. `app.direct_sql` ran it on the sqlite3 connection)."""
    engine = api.client.app.state.strata.db.engine.sync_engine  # type: ignore[attr-defined]
    seen: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, sql: str, _params: Any, context: Any, _many: Any) -> None:
        seen.append((" ".join(sql.split()), context is None))

    def ended(_conn: Any) -> None:
        seen.append(("END", False))

    async def listen() -> None:
        # on the app's loop, between two of its callbacks: never after a batch's BEGIN and
        # before its statements (the worker's idle claims run in batches of their own; a listener
        # added from this thread could land in the middle of one and see its UPDATE alone)
        event.listen(engine, "before_cursor_execute", record)
        event.listen(engine, "commit", ended)
        event.listen(engine, "rollback", ended)

    api.client.portal.call(listen)  # type: ignore[union-attr]
    yield seen
    event.remove(engine, "before_cursor_execute", record)
    event.remove(engine, "commit", ended)
    event.remove(engine, "rollback", ended)


def _outside_transactions(statements: list[tuple[str, bool]]) -> list[str]:
    """The direct statements that ran outside a `BEGIN … COMMIT/ROLLBACK` (none may)."""
    open_, outside = False, []
    for sql, direct in statements:
        if sql.startswith("BEGIN"):
            open_ = True
        elif sql == "END":
            open_ = False
        elif direct and not open_:
            outside.append(sql)
    return outside


def _rows(api: Api, run_id: str) -> dict[str, Any]:
    """The run's row and its events as the database holds them (raw SQL, no type processing)."""
    engine = api.client.app.state.strata.db.engine  # type: ignore[attr-defined]
    stored = uuid.UUID(run_id).hex if DB_BACKEND == "sqlite" else run_id

    async def read() -> dict[str, Any]:
        async with engine.connect() as connection:
            run = (
                await connection.execute(text("SELECT * FROM runs WHERE id = :id"), {"id": stored})
            ).one()
            events = (
                await connection.execute(
                    text("SELECT * FROM run_events WHERE run_id = :id ORDER BY seq"), {"id": stored}
                )
            ).all()
        return {
            "run": without_ids_and_times(dict(run._mapping)),
            "events": [without_ids_and_times(dict(row._mapping)) for row in events],
        }

    return api.client.portal.call(read)  # type: ignore[union-attr]


def test_a_run_is_stored_the_same_with_or_without_direct_statements(
    api: Api, statements: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    direct_run = api.run_to_end(chat("hi"))
    direct_statements = list(statements)
    monkeypatch.setattr(direct_sql, "bind_connection", lambda *_args: None)
    monkeypatch.setattr("app.db.bind_connection", lambda *_args: None)
    db = api.client.app.state.strata.db  # type: ignore[attr-defined]

    async def forget_kept_sessions() -> None:  # on the app's loop: never in a batch's middle
        db._writer_sessions[:] = [None] * len(db._writer_sessions)  # they hold the connection
        statements.clear()

    api.client.portal.call(forget_kept_sessions)  # type: ignore[union-attr]
    plain_run = api.run_to_end(chat("hi"))

    assert direct_run["status"] == plain_run["status"] == "succeeded"
    assert without_ids_and_times(direct_run) == without_ids_and_times(plain_run)
    assert _rows(api, direct_run["id"]) == _rows(api, plain_run["id"])
    assert not any(direct for _sql, direct in statements)  # the second run: none direct
    assert _outside_transactions(direct_statements) == []
    direct = {
        sql.split(" (")[0].split(" SET")[0] for sql, is_direct in direct_statements if is_direct
    }
    if DB_BACKEND == "sqlite":
        # the writer's batches begin on the sqlite3 connection too (`direct_sql.begin`)
        assert direct == {
            "BEGIN IMMEDIATE",
            "INSERT INTO runs",
            "INSERT INTO run_events",
            "UPDATE runs",
        }
        # both of the run's updates: the claim (takes the queued run) and the terminal one
        updates = {sql for sql, is_direct in direct_statements if is_direct and "UPDATE" in sql}
        assert any("started_at=?" in sql for sql in updates)
        assert any("finished_at=?" in sql for sql in updates)
    else:
        assert direct == set()  # PostgreSQL: every statement through SQLAlchemy


async def _tenant_id(db: Database) -> uuid.UUID:
    tenant: Tenant = await db.write(get_or_create_tenant, "t-direct")
    return tenant.id


async def _insert_event(session: AsyncSession, run_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
    row = {
        "run_id": run_id,
        "seq": 1,
        "tenant_id": tenant_id,
        "type": "run_queued",
        "data": {},
        "created_at": datetime.now(UTC),
    }
    await direct_sql.execute(session, insert(RunEvent.__table__), row)


async def test_errors_are_sqlalchemys_and_undo_only_their_job(db: Database) -> None:
    tenant_id = await _tenant_id(db)
    run_id = uuid.uuid4()  # no such run: the event's foreign key fails

    with pytest.raises(IntegrityError) as raised:
        await db.write(_insert_event, run_id, tenant_id)

    assert "foreign key" in str(raised.value.orig).lower()
    count = await db.read(
        lambda session: session.scalar(select(RunEvent.seq).where(RunEvent.run_id == run_id))
    )
    assert count is None


async def test_a_missing_parameter_is_refused(db: Database) -> None:
    async def without_name(session: AsyncSession) -> list[Any]:
        statement = select(Tenant.id).where(Tenant.name == bindparam("name"))
        return await direct_sql.execute(session, statement, {})

    with pytest.raises(SQLAlchemyError, match="A value is required for bind parameter 'name'"):
        await db.write(without_name)


async def test_a_shape_that_needs_column_defaults_goes_through_the_session(db: Database) -> None:
    async def add_tenant(session: AsyncSession) -> list[Any]:
        # no `id`, no `created_at`: Python-side defaults that only SQLAlchemy's execution fills
        return await direct_sql.execute(
            session, insert(Tenant.__table__).returning(Tenant.id), {"name": "t-defaults"}
        )

    rows = await db.write(add_tenant)

    assert len(rows) == 1 and isinstance(rows[0]["id"], uuid.UUID)
    stored = await db.read(
        lambda session: session.scalar(select(Tenant.id).where(Tenant.name == "t-defaults"))
    )
    assert stored == rows[0]["id"]


async def _add_tenant_directly(session: AsyncSession, name: str, fail: bool = False) -> str:
    row = {"id": uuid.uuid4(), "name": name, "created_at": datetime.now(UTC)}
    await direct_sql.execute(session, _INSERT_TENANT, row)
    if fail:
        raise RuntimeError("the job fails after its direct write")
    return name


_INSERT_TENANT = insert(Tenant.__table__)


async def _tenant_names(db: Database) -> set[str]:
    return set(await db.read(lambda session: session.scalars(select(Tenant.name))))


async def test_a_direct_write_is_part_of_its_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError, match="fails after its direct write"):
        await db.write(_add_tenant_directly, "t-undone", fail=True)

    assert "t-undone" not in await _tenant_names(db)
    assert await db.write(_add_tenant_directly, "t-kept") == "t-kept"
    assert "t-kept" in await _tenant_names(db)


async def test_a_failing_job_undoes_only_its_own_direct_writes(db: Database) -> None:
    # written together, one batch: the failing job's savepoint undoes its row alone
    results = await asyncio.gather(
        db.write(_add_tenant_directly, "t-first"),
        db.write(_add_tenant_directly, "t-failing", fail=True),
        db.write(_add_tenant_directly, "t-last"),
        return_exceptions=True,
    )

    assert results[0] == "t-first" and results[2] == "t-last"
    assert isinstance(results[1], RuntimeError)
    names = await _tenant_names(db)
    assert {"t-first", "t-last"} <= names and "t-failing" not in names
    if DB_BACKEND == "sqlite":
        assert db.batch_reruns == 1  # the batch ran again with a savepoint per job


async def _add_tenant_through_the_session(
    session: AsyncSession, name: str, fail: bool = False
) -> str:
    session.add(Tenant(name=name))
    await session.flush()  # SQLAlchemy's transaction joins the one the batch began
    if fail:
        raise RuntimeError("the job fails after its write through the session")
    return name


async def test_a_batch_mixing_direct_and_session_writes_commits_them_together(db: Database) -> None:
    batches = db.batches
    results = await asyncio.gather(
        db.write(_add_tenant_directly, "t-direct"),
        db.write(_add_tenant_through_the_session, "t-session"),
        db.write(_add_tenant_directly, "t-direct-after"),
    )

    assert results == ["t-direct", "t-session", "t-direct-after"]
    assert db.batches == batches + 1  # one transaction for the three
    assert {"t-direct", "t-session", "t-direct-after"} <= await _tenant_names(db)


async def test_a_failing_session_write_is_undone_and_the_batch_commits_the_rest(
    db: Database,
) -> None:
    results = await asyncio.gather(
        db.write(_add_tenant_directly, "t-kept-direct"),
        db.write(_add_tenant_through_the_session, "t-undone-session", fail=True),
        db.write(_add_tenant_through_the_session, "t-kept-session"),
        return_exceptions=True,
    )

    assert results[0] == "t-kept-direct" and results[2] == "t-kept-session"
    assert isinstance(results[1], RuntimeError)
    names = await _tenant_names(db)
    assert {"t-kept-direct", "t-kept-session"} <= names
    assert "t-undone-session" not in names
    # nothing is left open on the writer's connection: the next write commits alone
    assert await db.write(_add_tenant_through_the_session, "t-next") == "t-next"
    assert "t-next" in await _tenant_names(db)


async def _objects_in_session(session: AsyncSession) -> int:
    return len(session.sync_session.identity_map)


async def test_a_batch_starts_with_an_empty_session_after_any_other(db: Database) -> None:
    # SQLite's writer keeps its session between batches that leave nothing in it
    await db.write(_add_tenant_directly, "t-direct-first")
    assert await db.write(_objects_in_session) == 0
    await db.write(_add_tenant_through_the_session, "t-orm")  # leaves a Tenant in its session
    assert await db.write(_objects_in_session) == 0
    with pytest.raises(RuntimeError):
        await db.write(_add_tenant_through_the_session, "t-orm-failed", fail=True)
    assert await db.write(_objects_in_session) == 0
    assert "t-orm-failed" not in await _tenant_names(db)
