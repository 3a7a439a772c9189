"""Wake-ups across tasks and processes: workers, waiters and event streams.

A notification names a *topic* (`"queue"` when a run is queued, `"run:<id>"` when a run appended
events or changed status, `"cancel:<id>"`, `"session:<id>"`). Receivers treat it as a hint and
re-read the database, so a notification can be lost, duplicated or merged without harm; it only
makes the re-read happen sooner than the receiver's fallback timeout.

Writers never notify directly. Inside a write transaction they record topics (`notify`) and, for
receivers in the same process, *hand-off payloads* (`hand_off`: e.g. the run's terminal state and
the events just appended) in the transaction's outbox. `app.db.Database` delivers the outbox once
the transaction committed, and drops it when it rolled back:

- in this process, every topic is dispatched with its payloads, so a waiter or an event stream
  in the process that ran the run gets the terminal state without reading the database again;
- on PostgreSQL, `flush_outbox` also sends the topics with one `pg_notify` inside the transaction
  (delivered to every process exactly when it commits). The payload starts with this process's
  origin id, so the listener of the sending process skips what it already dispatched. When the
  LISTEN connection drops, it reconnects with backoff and wakes *every* subscriber, because
  notifications sent while it was away are lost (NOTES.md).

Usage by a receiver, free of lost wake-ups::

    async with notifier.subscribe(f"run:{run_id}") as wake:
        while not done(await read_state()):
            await wake.wait(timeout)   # returns on a notification or at the timeout
            payloads, needs_read = wake.take_payloads()
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger("strata.notifier")

CHANNEL = "strata"
QUEUE_TOPIC = "queue"
WORKERS_TOPIC = "workers"
_OUTBOX = "strata_outbox"
_MAX_PAYLOAD_BYTES = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
_MAX_PENDING_PAYLOADS = 64


def run_topic(run_id: object) -> str:
    return f"run:{run_id}"


def cancel_topic(run_id: object) -> str:
    return f"cancel:{run_id}"


def session_topic(session_id: object) -> str:
    return f"session:{session_id}"


# --- the outbox of a transaction ----------------------------------------------------------------


@dataclass
class Outbox:
    """Topics and hand-off payloads recorded by one transaction, delivered after it commits."""

    topics: list[str] = field(default_factory=list)
    payloads: list[tuple[str, Any]] = field(default_factory=list)

    def mark(self) -> tuple[int, int]:
        return len(self.topics), len(self.payloads)

    def truncate(self, mark: tuple[int, int]) -> None:
        """Forget what was recorded after `mark` (its savepoint rolled back)."""
        del self.topics[mark[0] :]
        del self.payloads[mark[1] :]

    def extend(self, other: Outbox) -> None:
        self.topics.extend(other.topics)
        self.payloads.extend(other.payloads)


def outbox(session: AsyncSession) -> Outbox:
    """The outbox of `session`'s current transaction."""
    box: Outbox | None = session.info.get(_OUTBOX)
    if box is None:
        box = session.info[_OUTBOX] = Outbox()
    return box


def take_outbox(session: AsyncSession) -> Outbox:
    """Remove and return the session's outbox (empty when nothing was recorded)."""
    box: Outbox | None = session.info.pop(_OUTBOX, None)
    return box if box is not None else Outbox()


def notify(session: AsyncSession, *topics: str) -> None:
    """Record `topics` to be delivered (to every process) when the transaction commits."""
    outbox(session).topics.extend(topics)


def hand_off(session: AsyncSession, topic: str, payload: Any) -> None:
    """Record `payload` for this process's subscribers of `topic`, delivered after commit.

    Also notifies `topic`, so other processes wake up (and read the database instead).
    """
    box = outbox(session)
    box.topics.append(topic)
    box.payloads.append((topic, payload))


# --- subscribers --------------------------------------------------------------------------------


class Wake:
    """One subscriber's wake-up flag and the payloads handed to it since it last looked."""

    __slots__ = ("_event", "_needs_read", "_payloads")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._payloads: deque[Any] | None = None
        self._needs_read = False

    def set(self, payload: Any = None) -> None:
        if payload is None:
            self._needs_read = True  # a bare notification: only the database knows what changed
        else:
            if self._payloads is None:
                self._payloads = deque()
            if len(self._payloads) >= _MAX_PENDING_PAYLOADS:
                self._payloads.clear()
                self._needs_read = True  # too many to keep: read the database instead
            else:
                self._payloads.append(payload)
        self._event.set()

    async def wait(self, timeout: float | None) -> bool:
        """Wait for a notification; True if one arrived, False at the timeout."""
        if not self._event.is_set():
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

    def take_payloads(self) -> tuple[list[Any], bool]:
        """The payloads received since the last call (oldest first), and whether the receiver
        must read the database anyway (a bare notification arrived, or payloads were dropped)."""
        payloads = list(self._payloads) if self._payloads else []
        if self._payloads:
            self._payloads.clear()
        needs_read, self._needs_read = self._needs_read, False
        return payloads, needs_read


Listener = Callable[[str, Any], None]


class Notifier:
    """In-process dispatch, shared by both implementations."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Wake]] = defaultdict(set)
        self._prefix_listeners: dict[str, list[Listener]] = {}
        self._reset_listeners: list[Callable[[], None]] = []
        self.origin = uuid.uuid4().hex[:12]

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

    def add_prefix_listener(self, prefix: str, listener: Listener) -> Callable[[], None]:
        """Call `listener(topic, payload)` for every topic `prefix:<x>`; returns a remover.

        For receivers that track many topics of one kind (a worker and its runs' cancel
        topics) without a subscription each.
        """
        self._prefix_listeners.setdefault(prefix, []).append(listener)

        def remove() -> None:
            listeners = self._prefix_listeners.get(prefix)
            if listeners is not None and listener in listeners:
                listeners.remove(listener)

        return remove

    def add_reset_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever notifications may have been lost (`dispatch_all`)."""
        self._reset_listeners.append(listener)

    def dispatch(self, topic: str, payload: Any = None) -> None:
        for wake in self._subscribers.get(topic, ()):
            wake.set(payload)
        if self._prefix_listeners:
            prefix, _, _ = topic.partition(":")
            for listener in self._prefix_listeners.get(prefix, ()):
                listener(topic, payload)

    def dispatch_all(self) -> None:
        for listener in self._reset_listeners:
            listener()
        for subscribers in self._subscribers.values():
            for wake in subscribers:
                wake.set()

    def deliver(self, box: Outbox) -> None:
        """Dispatch a committed transaction's outbox in this process."""
        with_payload = {topic for topic, _ in box.payloads}
        for topic, payload in box.payloads:
            self.dispatch(topic, payload)
        for topic in dict.fromkeys(box.topics):
            if topic not in with_payload:
                self.dispatch(topic)

    async def flush_outbox(self, session: AsyncSession, box: Outbox) -> None:
        """Send the outbox to other processes, inside the transaction (PostgreSQL only)."""

    async def start(self) -> None:
        """Begin receiving (PostgreSQL: open the LISTEN connection)."""

    async def close(self) -> None:
        """Stop receiving and release the connection."""


class LocalNotifier(Notifier):
    """Single-process notifier (SQLite): the outbox is only delivered in this process."""


_NOTIFY = text("SELECT pg_notify(:channel, p) FROM unnest(:payloads) AS p").bindparams(
    bindparam("payloads", type_=postgresql.ARRAY(postgresql.TEXT))
)


def _payload_chunks(origin: str, topics: Iterable[str]) -> list[str]:
    chunks: list[str] = []
    current = [origin]
    size = len(origin)
    for topic in dict.fromkeys(topics):
        if size + 1 + len(topic) > _MAX_PAYLOAD_BYTES and len(current) > 1:
            chunks.append(" ".join(current))
            current, size = [origin], len(origin)
        current.append(topic)
        size += 1 + len(topic)
    if len(current) > 1:
        chunks.append(" ".join(current))
    return chunks


class PostgresNotifier(Notifier):
    """LISTEN/NOTIFY on one channel; one dedicated connection per process."""

    def __init__(self, database_url: str, *, reconnect_max_seconds: float = 5.0) -> None:
        super().__init__()
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._reconnect_max = reconnect_max_seconds
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def flush_outbox(self, session: AsyncSession, box: Outbox) -> None:
        if box.topics:
            chunks = _payload_chunks(self.origin, box.topics)
            await session.execute(_NOTIFY, {"channel": CHANNEL, "payloads": chunks})

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
                log.warning("listener_disconnected", error_class=type(exc).__name__, retry_in=delay)
            finally:
                self._connected.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, topics = payload.partition(" ")
        if origin == self.origin:
            return  # this process dispatched it after its commit already
        for topic in topics.split(" "):
            if topic:
                self.dispatch(topic)


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
