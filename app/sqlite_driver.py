"""An aiosqlite-compatible driver that runs SQLite calls on the event loop's own thread.

SQLAlchemy's async SQLite dialect talks to `aiosqlite`, which runs every call (open a cursor,
execute, fetch, close) on a thread of its own and hands the result back to the event loop. Each
of those hand-offs costs far more CPU than the SQLite call itself (measured: ~140 µs for
`SELECT 1`, ~380 µs for an indexed SELECT through SQLAlchemy, versus ~35 µs run synchronously), and
a statement makes four of them.

SQLite is an in-process library, and Strata's statements are small indexed reads and writes: in
WAL mode a read never waits for the writer, and Strata has one writer per process (see
`app.db`), so a call returns in microseconds. This module gives SQLAlchemy the awaitable
interface it expects from `aiosqlite` (`async_creator=` of `create_async_engine`), but each
awaitable completes at once, on the calling thread, without suspending the event loop.

What keeps the event loop from ever waiting on the database:

- a small `busy_timeout` on these connections, so a lock held by *another process* is noticed
  quickly; the writer in `app.db` retries a busy `BEGIN IMMEDIATE` with an asyncio sleep;
- `wal_autocheckpoint = 0`: the fsync of a checkpoint happens on `Checkpointer`'s own thread and
  connection, never in a commit on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 100
"""How long one SQLite call may wait for a lock another process holds before it fails busy."""


class _ImmediateQueue:
    """Stands in for aiosqlite's request queue: runs a request at once, on this thread."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)


class ImmediateCursor:
    """An aiosqlite-style cursor whose coroutines finish without suspending."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> ImmediateCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = None) -> ImmediateCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> ImmediateCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if size is None:
            return self._cursor.fetchmany()
        return self._cursor.fetchmany(size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    def __aiter__(self) -> ImmediateCursor:
        return self

    async def __anext__(self) -> Any:
        row = self._cursor.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row


class ImmediateConnection:
    """An aiosqlite-style connection over a `sqlite3.Connection` used on the loop's thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        # SQLAlchemy's adapter looks at these aiosqlite internals.
        self._connection: sqlite3.Connection | None = connection
        self._tx = _ImmediateQueue()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def sqlite_connection(self) -> sqlite3.Connection:
        """The sqlite3 connection (`app.direct_sql` runs hot statements on it)."""
        return self._conn

    def cursor(self) -> ImmediateCursor:
        return ImmediateCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> ImmediateCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


def connect(path: str) -> sqlite3.Connection:
    """A `sqlite3` connection with Strata's settings (WAL, foreign keys, no auto-checkpoint).

    `isolation_level=None` hands transaction control to SQLAlchemy (`app.db` emits `BEGIN` or
    `BEGIN IMMEDIATE`). `check_same_thread=False` because the pool may close a connection from
    the garbage collector's thread.
    """
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL is a property of the file: switch only when needed, since switching needs the file to
    # itself and fails ("database is locked") while other connections are open.
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


def async_creator(path: str) -> Callable[[], Any]:
    """The `async_creator` for `create_async_engine` over the SQLite file at `path`."""

    async def create() -> ImmediateConnection:
        return ImmediateConnection(connect(path))

    return create


class Checkpointer:
    """Copies the write-ahead log into the database file on a thread of its own.

    The connections on the event loop never checkpoint (`wal_autocheckpoint = 0`), because a
    checkpoint ends with an fsync. This thread runs a PASSIVE checkpoint (which never blocks
    readers or the writer) whenever the log grew past `wal_bytes`, and a TRUNCATE checkpoint
    when it stops, so a cleanly stopped database is one self-contained file.
    """

    def __init__(self, path: str, *, interval: float = 1.0, wal_bytes: int = 4 * 1024**2) -> None:
        self._path = path
        self._wal = Path(path + "-wal")
        self._interval = interval
        self._wal_bytes = wal_bytes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="strata-sqlite-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=30)

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=5)
        try:
            while not self._stop.wait(self._interval):
                if self._wal_size() >= self._wal_bytes:
                    self._checkpoint(connection, "PASSIVE")
            self._checkpoint(connection, "TRUNCATE")
        finally:
            connection.close()

    def _wal_size(self) -> int:
        try:
            return self._wal.stat().st_size
        except OSError:
            return 0

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection, mode: str) -> None:
        with contextlib.suppress(sqlite3.Error):  # busy or locked: the next round tries again
            connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
