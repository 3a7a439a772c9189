"""Wake-ups across tasks and processes: workers, waiters and event streams.

A notification carries no data, only a *topic* (`"queue"` when a run is queued, `"run:<id>"`
when a run appended events or changed status). Receivers always re-read the database after a
wake-up, so a notification can be lost, duplicated or merged without harm; it only makes the
re-read happen sooner than the receiver's fallback timeout.

Two implementations behind one interface:

- `LocalNotifier` (SQLite, the embedded default): topics are dispatched in the process. Writers
  call `publish` after their transaction committed.
- `PostgresNotifier`: writers call `pg_notify('strata', topic)` inside their transaction
  (`notify_sql`), so PostgreSQL delivers it exactly when the transaction commits, to every
  process. One dedicated asyncpg connection per process LISTENs and dispatches locally. When that
  connection drops it reconnects with backoff and then wakes *every* subscriber, because
  notifications sent while it was away are lost (NOTES.md).

Usage by a receiver, free of lost wake-ups::

    async with notifier.subscribe(f"run:{run_id}") as wake:
        while not done(await read_state()):
            await wake.wait(timeout)   # returns on a notification or at the timeout
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger("strata.notifier")

CHANNEL = "strata"
QUEUE_TOPIC = "queue"


def run_topic(run_id: object) -> str:
    return f"run:{run_id}"


def session_topic(session_id: object) -> str:
    return f"session:{session_id}"


class Wake:
    """One subscriber's wake-up flag. `wait` clears it after it fired."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None) -> bool:
        """Wait for a notification; True if one arrived, False at the timeout."""
        try:
            if timeout is None:
                await self._event.wait()
            else:
                async with asyncio.timeout(max(timeout, 0)):
                    await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class Notifier:
    """In-process dispatch, shared by both implementations."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Wake]] = defaultdict(set)

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Wake]:
        wake = Wake()
        for topic in topics:
            self._subscribers[topic].add(wake)
        try:
            yield wake
        finally:
            for topic in topics:
                subscribers = self._subscribers.get(topic)
                if subscribers is not None:
                    subscribers.discard(wake)
                    if not subscribers:
                        del self._subscribers[topic]

    def dispatch(self, topic: str) -> None:
        for wake in self._subscribers.get(topic, ()):
            wake.set()

    def dispatch_all(self) -> None:
        for subscribers in self._subscribers.values():
            for wake in subscribers:
                wake.set()

    async def notify_in_transaction(self, session: AsyncSession, *topics: str) -> None:
        """Arrange for `topics` to be delivered when `session`'s transaction commits."""
        raise NotImplementedError

    async def start(self) -> None:
        """Begin receiving (PostgreSQL: open the LISTEN connection)."""

    async def close(self) -> None:
        """Stop receiving and release the connection."""


class LocalNotifier(Notifier):
    """Single-process notifier: delivery happens after the session commits."""

    async def notify_in_transaction(self, session: AsyncSession, *topics: str) -> None:
        pending: set[str] = session.info.setdefault("strata_topics", set())
        if not pending:
            _deliver_after_commit(session, self)
        pending.update(topics)


def _deliver_after_commit(session: AsyncSession, notifier: Notifier) -> None:
    from sqlalchemy import event

    sync_session = session.sync_session

    def _after_commit(_session: Any) -> None:
        topics = sync_session.info.pop("strata_topics", set())
        for topic in topics:
            notifier.dispatch(topic)

    def _after_rollback(_session: Any) -> None:
        sync_session.info.pop("strata_topics", None)

    event.listen(sync_session, "after_commit", _after_commit, once=True)
    event.listen(sync_session, "after_soft_rollback", _after_rollback, once=True)


class PostgresNotifier(Notifier):
    """LISTEN/NOTIFY on one channel; one dedicated connection per process."""

    def __init__(self, database_url: str, *, reconnect_max_seconds: float = 5.0) -> None:
        super().__init__()
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._reconnect_max = reconnect_max_seconds
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def notify_in_transaction(self, session: AsyncSession, *topics: str) -> None:
        for topic in topics:
            await session.execute(
                text("SELECT pg_notify(:channel, :topic)"), {"channel": CHANNEL, "topic": topic}
            )

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="strata-listener")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._connected.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        import asyncpg

        delay = 0.1
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=5)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notification)
                self._connected.set()
                delay = 0.1
                # Anything sent while we were not listening is lost: wake everyone to re-read.
                self.dispatch_all()
                await _wait_until_lost(connection, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listener_disconnected", error=str(exc), retry_in=delay)
            finally:
                self._connected.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.dispatch(payload)


async def _wait_until_lost(connection: Any, lost: asyncio.Event) -> None:
    """Return when the LISTEN connection dies; probe it so a silent network loss is noticed."""
    while not lost.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await lost.wait()
        if not lost.is_set():
            await connection.execute("SELECT 1", timeout=5)


def create_notifier(database_url: str) -> Notifier:
    if make_url(database_url).get_backend_name() == "postgresql":
        return PostgresNotifier(database_url)
    return LocalNotifier()
