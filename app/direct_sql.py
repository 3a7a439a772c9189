"""The run hot path's writes on SQLite: statements compiled once, run on the sqlite3 connection.

Each run writes its row and first event, is claimed (an `UPDATE … RETURNING` and its
`run_started` event), and writes its terminal state with the last events: five statements that
SQLAlchemy executes through its full machinery (an execution context per call, the ORM
session's bookkeeping, parameter processing by name), which cost several times the SQLite work
itself. Profiled at eight concurrent clients, SQLAlchemy's part of those statements was about a
seventh of the CPU of a run (bench/README.md, "The lean solver and direct statements").

`execute(session, statement, params)` runs such a statement with what SQLAlchemy itself would
send, without that machinery:

- The statement is compiled by SQLAlchemy once per shape (statement, and for an INSERT the
  columns given): the same SQL text, the same bind processors (JSON, UUID, datetimes, enums),
  the same result processors. Parameters are bound positionally in the compiled order.
- It runs on the sqlite3 connection of the transaction the writer's batch holds (the session
  carries it: `bind_connection`), so it is part of that transaction, its savepoints and its
  rollback, exactly like the session's own statements.
- Errors are raised as SQLAlchemy raises them (`IntegrityError`, `OperationalError`… with the
  sqlite3 error as `orig`), and `before_cursor_execute` / `after_cursor_execute` listeners
  see every statement (with `context=None`), so statement counters keep counting.

Everything else takes `session.execute`, with the same result: PostgreSQL (asyncpg has its
own costs and its own protocol), a session outside a writer's batch (command-line tools, tests
without writers), and any shape that needs what only SQLAlchemy's execution context does:
Python-side column defaults or `onupdate` values, and expanding `IN` parameters. That check is
made when a shape is first compiled, so such a statement is never run half right.

A writer's batch also begins and ends its transaction on the sqlite3 connection (`begin`,
`end`): a batch of direct statements never enters SQLAlchemy's transaction
machinery, and a job that uses the session makes SQLAlchemy's transaction join the open one.

Results: a list of row mappings (column name → processed value) for a statement that returns
rows, else an empty list.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

_CONNECTION = "strata.sqlite3"
"""`session.info` key of the sqlite3 connection a writer's batch holds."""
RAW_TRANSACTION = "strata.raw_transaction"
"""`Connection.info` key set while a writer's batch holds a transaction it began on the sqlite3
connection (`begin`): SQLAlchemy's own `begin` then joins it instead of emitting `BEGIN`."""
_OPENED = "strata.opened_transaction"
"""`session.info` key of the innermost session transaction known to be open on the connection."""

Params = Mapping[str, Any]


def bind_connection(session: AsyncSession, connection: AsyncConnection) -> None:
    """Let `execute` run statements of `session` on `connection`'s sqlite3 connection (a
    writer's batch session on SQLite, bound to that one connection)."""
    sync = connection.sync_connection
    if sync is None:
        return
    raw = getattr(sync.connection.driver_connection, "sqlite_connection", None)
    if isinstance(raw, sqlite3.Connection):
        session.info[_CONNECTION] = (raw, sync)


@dataclass(frozen=True, slots=True)
class _Shape:
    """One compiled statement: SQL text, positional binds, result columns (`direct` False:
    the shape needs SQLAlchemy's execution context)."""

    direct: bool
    sql: str
    binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]  # name, bind, processor
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # none: returns no rows


_UNSET = object()
_shapes: dict[tuple[int, tuple[str, ...] | None], tuple[Executable, _Shape]] = {}
"""Compiled shapes by (statement id, INSERT columns). The statement is kept with its shape, so
its id cannot be reused by another object while the entry lives. Hot-path statements are
module constants or built once per shape (`functools.lru_cache`), so this stays small; it is
emptied when it reaches `_MAX_SHAPES` (statements built anew per call)."""
_MAX_SHAPES = 256


async def execute(
    session: AsyncSession, statement: Executable, params: Params | list[Params]
) -> list[dict[str, Any]]:
    """Run `statement` with `params` (one mapping, or a list for an executemany); its rows as
    mappings (empty when it returns none). See the module docstring for when it runs on the
    sqlite3 connection and when through `session.execute`."""
    held: tuple[sqlite3.Connection, Connection] | None = session.info.get(_CONNECTION)
    if held is not None:
        items = params if isinstance(params, list) else [params]
        if items:
            raw, sync = held
            shape = _shape(statement, items[0], sync.dialect)
            if shape.direct:
                await _begun(session)
                return _run(raw, sync, shape, items, many=isinstance(params, list))
    result = await session.execute(statement, params)
    if not getattr(result, "returns_rows", True):
        return []
    return [dict(row) for row in result.mappings()]


_BEGIN_IMMEDIATE = _Shape(True, "BEGIN IMMEDIATE", (), ())


def holds_more_than_its_connection(session: AsyncSession) -> bool:
    """Whether `session.info` holds anything besides the connection `bind_connection` put
    there (a transaction `_begun` opened, a notifier's outbox…)."""
    return any(key != _CONNECTION for key in session.info)


def begin(session: AsyncSession) -> bool:
    """Begin the batch's transaction on the sqlite3 connection (`BEGIN IMMEDIATE`); False when
    `session` holds no such connection (the caller begins through SQLAlchemy).

    A batch whose jobs only run direct statements then never enters SQLAlchemy's transaction
    machinery (a session transaction, the connection's, their events): 18 % of the CPU of a
    run at one client, 6 to 7 % at eight (measured in pairs, bench/README.md). A job that runs
    a statement through the session starts SQLAlchemy's transaction as usual; `app.db`'s
    `begin` hook sees `RAW_TRANSACTION` and joins the open one instead of emitting a second
    `BEGIN`. End it with `end`.
    """
    held: tuple[sqlite3.Connection, Connection] | None = session.info.get(_CONNECTION)
    if held is None:
        return False
    raw, sync = held
    _run(raw, sync, _BEGIN_IMMEDIATE, [{}], many=False)
    sync.info[RAW_TRANSACTION] = True
    return True


async def end(session: AsyncSession, *, commit: bool) -> None:
    """Commit (or roll back) a transaction `begin` opened: through the session when a job's
    statement made SQLAlchemy's transaction join it (SQLAlchemy ends the sqlite3 connection's
    transaction then), and on the sqlite3 connection for whatever is still open."""
    raw, sync = session.info[_CONNECTION]
    try:
        if session.in_transaction():
            await (session.commit() if commit else session.rollback())
        if raw.in_transaction:
            _end(raw, sync, commit=commit)
    finally:
        sync.info.pop(RAW_TRANSACTION, None)


def _end(raw: sqlite3.Connection, sync: Connection, *, commit: bool) -> None:
    try:
        if commit:
            raw.commit()
        else:
            raw.rollback()
    except sqlite3.Error as error:
        statement = "COMMIT" if commit else "ROLLBACK"
        raise exc.DBAPIError.instance(
            statement, (), error, sqlite3.Error, dialect=sync.dialect
        ) from error
    if sync._has_events or sync.engine._has_events:  # as SQLAlchemy's own commit would
        if commit:
            sync.dispatch.commit(sync)
        else:
            sync.dispatch.rollback(sync)


async def _begun(session: AsyncSession) -> None:
    """Make sure the session's transaction, or its innermost savepoint, is open on the
    connection before a statement runs beside SQLAlchemy.

    SQLAlchemy begins lazily: `session.begin()` and `begin_nested()` emit `BEGIN IMMEDIATE` and
    `SAVEPOINT` only when the first statement runs through the session. A direct statement
    first would run outside them (the sqlite3 connection is in autocommit mode between
    SQLAlchemy's transactions), committed alone and never rolled back. `session.connection()`
    opens them; it runs once per transaction and savepoint (the last one it opened is kept).
    """
    innermost = _innermost(session)
    if innermost is None and session.info[_CONNECTION][1].info.get(RAW_TRANSACTION):
        return  # the batch's own transaction on the sqlite3 connection (`begin`) is open
    if innermost is None or session.info.get(_OPENED) is not innermost:
        await session.connection()
        session.info[_OPENED] = _innermost(session)


def _innermost(session: AsyncSession) -> SessionTransaction | None:
    sync_session = session.sync_session
    return sync_session.get_nested_transaction() or sync_session.get_transaction()


def _shape(statement: Executable, first: Params, dialect: Dialect) -> _Shape:
    keys = tuple(sorted(first)) if getattr(statement, "is_insert", False) else None
    cached = _shapes.get((id(statement), keys))
    if cached is not None and cached[0] is statement:
        return cached[1]
    shape = _compile(statement, keys, dialect)
    if len(_shapes) >= _MAX_SHAPES:  # statements built per call: never let the cache grow
        _shapes.clear()
    _shapes[(id(statement), keys)] = (statement, shape)
    return shape


def _compile(statement: Executable, keys: tuple[str, ...] | None, dialect: Dialect) -> _Shape:
    clause = cast(ClauseElement, statement)
    compiled: Any = clause.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    needs_context = bool(
        compiled.insert_prefetch
        or compiled.update_prefetch
        or any(bind.expanding for bind in compiled.binds.values())
        or compiled.positiontup is None
    )
    if needs_context:
        return _Shape(False, "", (), ())
    processors = compiled._bind_processors
    binds = tuple(
        (
            name,
            # a parameter the caller must give (SQLAlchemy raises without it), or a bound value
            _UNSET if compiled.binds[name].required else compiled.binds[name],
            processors.get(name),
        )
        for name in compiled.positiontup
    )
    columns = tuple(
        (column[0], column[3]._cached_result_processor(dialect, None))
        for column in compiled._result_columns
    )
    return _Shape(True, compiled.string, binds, columns)


def _values(shape: _Shape, params: Params) -> tuple[Any, ...]:
    values = []
    for name, default, processor in shape.binds:
        value = params.get(name, _UNSET)
        if value is _UNSET:
            if default is _UNSET:
                raise exc.InvalidRequestError(f"A value is required for bind parameter {name!r}")
            value = default.effective_value
        values.append(value if processor is None else processor(value))
    return tuple(values)


def _run(
    raw: sqlite3.Connection, sync: Connection, shape: _Shape, items: list[Params], *, many: bool
) -> list[dict[str, Any]]:
    bound: Any = [_values(shape, item) for item in items] if many else _values(shape, items[0])
    events = sync._has_events or sync.engine._has_events
    cursor = raw.cursor()
    try:
        if events:
            sync.dispatch.before_cursor_execute(sync, cursor, shape.sql, bound, None, many)
        try:
            if many:
                cursor.executemany(shape.sql, bound)
            else:
                cursor.execute(shape.sql, bound)
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(
                shape.sql, bound, error, sqlite3.Error, dialect=sync.dialect, ismulti=many
            ) from error
        if events:
            sync.dispatch.after_cursor_execute(sync, cursor, shape.sql, bound, None, many)
        columns = shape.columns
        if not columns:
            return []
        return [
            {
                name: value if processor is None else processor(value)
                for (name, processor), value in zip(columns, row, strict=True)
            }
            for row in cursor.fetchall()
        ]
    finally:
        cursor.close()
