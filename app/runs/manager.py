"""The worker: claims queued runs, proves it is alive, executes runs, commits one terminal state.

One `Worker` per process that executes runs (the embedded `strata serve`, or `strata worker`).

- **Liveness is per worker.** At start the worker inserts its row in `workers`; `_heartbeat_loop`
  renews it with one statement every `heartbeat_seconds`, whatever the number of runs in flight
  (on PostgreSQL on a connection of its own, `Database.write_reserved`: it never queues behind
  the terminal transactions of many runs ending at once),
  and in the same transaction reads which of its runs the database still gives it (one indexed
  query): a run that is no longer its own (a sweeper settled it) is aborted as `lease_lost`
  and writes nothing more; a run that went `cancelling` is stopped (a lost notification is
  caught here). Every write of an attempt is fenced by (run id, attempt, lease owner), see
  `app.runs.repository.Fence`.
- **Claiming.** `_claim_loop` claims up to `worker_concurrency - in_flight` runs in one
  transaction (one UPDATE for the batch and its `run_started` events). It is woken by the
  `queue` notification (a run was queued), by a run ending while every slot was taken, and
  falls back to polling every `worker_poll_seconds`.
- **Cancel.** `POST /cancel` moves a running run to `cancelling` and notifies `cancel:<id>`; a
  prefix listener finds the run among this worker's (no task or subscription per run), the
  runner stops the agent and exits every layer, and the terminal commit writes `cancelled`.
- **Finish.** One transaction: the terminal columns through the fence, the buffered text and the
  terminal event, the runtime session (`SessionPolicy`), the hand-off to this process's waiters.
  A run that is `cancelling` when its outcome arrives ends `cancelled`, whatever the outcome.
- **Lost workers.** `_sweep_loop` (every worker; safe concurrently: SKIP LOCKED and status
  conditions) settles runs whose worker's heartbeat is older than `lease_seconds` or whose worker
  row is gone, never its own: `worker_lost`, or a new attempt when the request allowed a retry,
  or `cancelled` when a cancel was pending.
- **Retention.** `app.retention.retention_loop` (every worker; safe concurrently) deletes old
  terminal runs and their events every `retention_interval_seconds`.
- **Shutdown is not a cancel.** `stop()` stops claiming, lets runs finish for
  `shutdown_grace_seconds`, then stops the rest with reason `shutdown`: their layers exit with
  SUSPEND, and each run is queued again as its next attempt when its retry policy allows, or
  fails with `worker_shutdown`; its session keeps its previous snapshot, as after a crash.
  `stop()` returns once every run task ended, then deletes the worker's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.config import Settings
from app.db import Database
from app.metrics import Metrics
from app.models import RunPurpose, RunStatus
from app.models.base import utcnow
from app.notifier import QUEUE_TOPIC, Notifier, hand_off, notify, run_topic
from app.retention import retention_loop
from app.runs import repository
from app.runs.outcome import ErrorType, RunOutcome, cancelled_outcome
from app.runs.policy import SessionPolicy
from app.runs.repository import ClaimedRun, Fence
from app.runs.terminal import EventRecord, RunUpdate, commit_terminal

log = structlog.get_logger("strata.worker")

CLAIM_BATCH = 50
"""Runs claimed per transaction: one statement for the batch; small enough that a worker with
thousands of free slots never holds the event loop long to claim (and start) a burst."""

_DEAD_WORKER_FACTOR = 10
"""A worker row silent for this many leases, with no run left, is deleted by the sweepers."""


@dataclass(slots=True)
class RunJob:
    """What a runner needs to execute one attempt; a copy of the stored request."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID
    attempt: int
    purpose: RunPurpose
    composition: dict[str, Any]
    inputs: dict[str, Any]
    session_snapshot_in: dict[str, Any] | None
    metadata: dict[str, Any]
    session_id: uuid.UUID | None = None
    max_attempts: int = 1

    @classmethod
    def from_claim(cls, run: ClaimedRun) -> RunJob:
        return cls(
            run_id=run.id,
            tenant_id=run.tenant_id,
            attempt=run.attempt,
            purpose=run.purpose,
            composition=run.composition,
            inputs=run.inputs,
            session_snapshot_in=run.session_snapshot_in,
            metadata=run.metadata,
            session_id=run.session_id,
            max_attempts=run.max_attempts,
        )


class EventSink(Protocol):
    async def emit(self, event_type: str, data: dict[str, Any]) -> None: ...

    async def text_delta(self, text: str) -> None: ...

    async def holds_lease(self) -> bool:
        """Whether this attempt still holds its run (one read), before destructive work."""
        ...


class CancelSignal:
    """Set when the run must stop; `reason` says why: `cancel_requested`, `shutdown`,
    `lease_lost` (another attempt may own the run now: write nothing, delete nothing)."""

    __slots__ = ("_callbacks", "event", "message", "reason")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None
        self.message: str | None = None
        self._callbacks: list[Callable[[], None]] = []

    def set(self, reason: str, message: str | None = None) -> None:
        if not self.event.is_set():
            self.reason, self.message = reason, message
            self.event.set()
            for callback in self._callbacks:
                callback()

    def is_set(self) -> bool:
        return self.event.is_set()

    def on_set(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the signal is set (at once if it is); returns a remover."""
        if self.event.is_set():
            callback()
            return lambda: None
        self._callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove


class Runner(Protocol):
    async def execute(self, job: RunJob, sink: EventSink, cancel: CancelSignal) -> RunOutcome: ...


class _FencedSink:
    """Writes a run's events through its fence; coalesces text deltas.

    Text deltas are buffered and written as one `agent_message_delta` event when
    `event_text_flush_seconds` passed since the first buffered delta, when the buffer reaches
    `event_text_flush_chars`, or before any other event. What is still buffered when the run
    ends goes into the terminal transaction (`take_text`). Writes are serialized by one lock, and
    each takes its text only once it holds the lock, so text is written in order and none is
    left behind a later write. A write that matches no row (stale fence) aborts the execution
    through the cancel signal.
    """

    __slots__ = ("_buffer", "_buffered", "_cancel", "_fence", "_lock", "_timer", "_worker")

    def __init__(self, worker: Worker, fence: Fence, cancel: CancelSignal) -> None:
        self._worker = worker
        self._fence = fence
        self._cancel = cancel
        self._buffer: list[str] = []
        self._buffered = 0
        self._timer: asyncio.TimerHandle | None = None
        self._lock: asyncio.Lock | None = None

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        await self._write(lambda: [*self._take_buffer(), (event_type, data)])

    async def text_delta(self, text: str) -> None:
        if not text:
            return
        self._buffer.append(text)
        self._buffered += len(text)
        if self._buffered >= self._worker.settings.event_text_flush_chars:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._worker.settings.event_text_flush_seconds, self._flush_soon
            )

    def _flush_soon(self) -> None:
        self._timer = None
        if self._buffer:
            self._worker.spawn_background(self.flush())

    async def flush(self) -> None:
        """Write buffered text now (after any write already queued)."""
        await self._write(self._take_buffer)

    async def holds_lease(self) -> bool:
        if self._cancel.reason == "lease_lost":
            return False
        return await self._worker._holds_lease(self._fence)

    async def take_text(self) -> str | None:
        """After every write already queued, the text still buffered (for the terminal
        transaction); empties the buffer."""
        async with self._ordered():
            items = self._take_buffer()
        return str(items[0][1]["delta"]) if items else None

    def _ordered(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _take_buffer(self) -> list[tuple[str, dict[str, Any]]]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return []
        text, self._buffer, self._buffered = "".join(self._buffer), [], 0
        return [("agent_message_delta", {"delta": text})]

    async def _write(self, take: Callable[[], list[tuple[str, dict[str, Any]]]]) -> None:
        # What to write is decided once the lock is ours: writes commit in the order they were
        # asked for, and text taken by a write never waits behind a later one.
        async with self._ordered():
            items = take()
            if not items or self._cancel.reason == "lease_lost":
                return
            try:
                seq = await self._worker.db.write(_append, self._fence, items)
            except Exception as exc:  # the database is down: lose the events, not the run
                log.warning(
                    "event_write_failed",
                    run_id=str(self._fence.run_id),
                    error_class=type(exc).__name__,
                )
                return
        if seq is None:
            self._cancel.set("lease_lost")


async def _append(
    session: AsyncSession, fence: Fence, items: list[tuple[str, dict[str, Any]]]
) -> int | None:
    now = utcnow()
    first = await repository.append_events(session, fence.run_id, items, fence=fence, now=now)
    if first is not None:
        update = RunUpdate(
            fence.run_id,
            [EventRecord(first + i, kind, data, now) for i, (kind, data) in enumerate(items)],
        )
        hand_off(session, run_topic(fence.run_id), update)
    return first


@dataclass(slots=True)
class _InFlight:
    fence: Fence
    cancel: CancelSignal
    task: asyncio.Task[None] | None = None
    finishing: bool = False


@dataclass
class _Background:
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class Worker:
    """Executes queued runs; see the module docstring for the protocol."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        notifier: Notifier,
        runner: Runner,
        policy: SessionPolicy,
        *,
        metrics: Metrics | None = None,
        owner: str | None = None,
        executing: dict[uuid.UUID, ClaimedRun] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.notifier = notifier
        self.runner = runner
        self.policy = policy
        self.metrics = metrics or Metrics()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        # the runs executing here, shared with the API's `RunDirectory`
        self.executing = executing if executing is not None else {}
        self._stopping = asyncio.Event()
        self._registered = asyncio.Event()
        # set by a `queue` notification, or by a run ending while every slot was taken
        self._claim_wanted = asyncio.Event()
        self._saturated = False
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._background = _Background()
        self._remove_listener: Callable[[], None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        """Start the loops. The worker registers itself (its `workers` row) before it claims
        anything, retrying while the database is away."""
        self._remove_listener = self.notifier.add_prefix_listener("cancel", self._on_cancel)
        self._loops = {
            "claim": asyncio.create_task(self._claim_loop(), name="strata-claim"),
            "heartbeat": asyncio.create_task(self._heartbeat_loop(), name="strata-heartbeat"),
            "sweep": asyncio.create_task(self._sweep_loop(), name="strata-sweep"),
            "retention": asyncio.create_task(
                retention_loop(self.db, self.settings, self.metrics), name="strata-retention"
            ),
        }
        log.info("worker_started", owner=self.owner, concurrency=self.settings.worker_concurrency)

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; let runs finish for the grace period; hand the rest back; wait for
        every run task; remove the worker's row."""
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        self._stopping.set()
        await _cancel_and_wait(self._loops.pop("claim", None))
        tasks = self._tasks()
        if tasks:
            log.info("worker_draining", runs=len(tasks), grace_seconds=grace)
            await asyncio.wait(tasks, timeout=grace)
        for item in list(self._in_flight.values()):
            item.cancel.set("shutdown", "the worker shut down")
        remaining = self._tasks()
        if remaining:
            await asyncio.wait(remaining, timeout=max(self.settings.lease_seconds, 5.0))
        stuck = self._tasks()
        for task in stuck:  # still stuck: another worker's sweeper will settle them
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=5.0)
        for name in ("heartbeat", "sweep", "retention"):
            await _cancel_and_wait(self._loops.pop(name, None))
        background = list(self._background.tasks)
        if background:
            await asyncio.wait(background, timeout=5.0)
        if self._remove_listener is not None:
            self._remove_listener()
        if not self._in_flight and self._registered.is_set():
            with contextlib.suppress(Exception):
                await self.db.write(repository.remove_worker, self.owner)
        log.info("worker_stopped", owner=self.owner)

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [item.task for item in self._in_flight.values() if item.task is not None]

    def spawn_background(self, coroutine: Any) -> None:
        """Run a short task the worker keeps a reference to (and waits for when stopping)."""
        task = asyncio.create_task(coroutine)
        self._background.tasks.add(task)
        task.add_done_callback(self._background.tasks.discard)

    # --- claiming -----------------------------------------------------------------------------

    async def _register(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                await self.db.write(_heartbeat, self.owner, 0, self.settings)
                self._registered.set()
                return
            except Exception as exc:
                log.warning("worker_register_failed", error_class=type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _claim_loop(self) -> None:
        await self._register()
        remove = self.notifier.add_prefix_listener(QUEUE_TOPIC, self._wanted)
        backoff = 0.1
        try:
            while not self._stopping.is_set():
                # cleared before claiming: a run queued meanwhile sets it again
                self._claim_wanted.clear()
                free = self.settings.worker_concurrency - len(self._in_flight)
                self._saturated = free <= 0
                if free > 0:
                    try:
                        claimed = await self.db.write(_claim, self.owner, min(free, CLAIM_BATCH))
                        backoff = 0.1
                    except Exception as exc:
                        log.warning(
                            "claim_failed", error_class=type(exc).__name__, retry_in=backoff
                        )
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    for run in claimed:
                        self._spawn(run)
                    if len(claimed) == min(free, CLAIM_BATCH):
                        await asyncio.sleep(0)  # let the new runs start between batches
                        continue  # there may be more
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.worker_poll_seconds):
                        await self._claim_wanted.wait()
        finally:
            remove()

    def _wanted(self, _topic: str, _payload: Any) -> None:
        self._claim_wanted.set()

    def _spawn(self, run: ClaimedRun) -> None:
        fence = Fence(run.id, run.attempt, self.owner)
        item = _InFlight(fence, CancelSignal())
        self._in_flight[run.id] = item
        self.executing[run.id] = run
        item.task = asyncio.create_task(
            self._execute(RunJob.from_claim(run), item), name=f"run-{run.id}"
        )
        self.metrics.in_flight.set(len(self._in_flight))
        log.debug(
            "run_claimed", run_id=str(run.id), tenant_id=str(run.tenant_id), attempt=run.attempt
        )

    # --- executing ----------------------------------------------------------------------------

    async def _execute(self, job: RunJob, item: _InFlight) -> None:
        fence, cancel = item.fence, item.cancel
        sink = _FencedSink(self, fence, cancel)
        try:
            try:
                outcome = await self.runner.execute(job, sink, cancel)
            except Exception as exc:  # a bug in the runner: still end the run
                log.exception("runner_crashed", run_id=str(job.run_id))
                outcome = RunOutcome(
                    status=RunStatus.FAILED,
                    error=f"internal error: {type(exc).__name__}",
                    error_type=ErrorType.INTERNAL_ERROR,
                    reason="runner_crashed",
                )
            text = await sink.take_text()
            if cancel.reason == "lease_lost":
                if not await self._holds_lease(fence):
                    log.warning("run_lease_lost", run_id=str(job.run_id), attempt=job.attempt)
                    return
                # The database says the run is still ours: losing it was a mistake (a bug).
                # End it anyway, so no run stays `running` behind a live worker forever.
                log.error("run_lease_loss_unconfirmed", run_id=str(job.run_id))
                outcome = RunOutcome(
                    status=RunStatus.FAILED,
                    usage=outcome.usage,
                    error="internal error: the worker stopped the run by mistake",
                    error_type=ErrorType.INTERNAL_ERROR,
                    reason="lease_check_failed",
                )
            item.finishing = True
            await self._finish(job, fence, cancel, outcome, text)
        finally:
            self._in_flight.pop(job.run_id, None)
            self.executing.pop(job.run_id, None)
            self.metrics.in_flight.set(len(self._in_flight))
            if self._saturated:
                self._claim_wanted.set()

    async def _finish(
        self,
        job: RunJob,
        fence: Fence,
        cancel: CancelSignal,
        outcome: RunOutcome,
        text: str | None,
    ) -> None:
        """Write the attempt's terminal state, trying again (every 5 s at most) until it is
        written or the worker stops; `finish_still_failing` is logged once after
        `max(3 x lease, 30 s)`.

        It never gives up while the process lives: a run whose finish was abandoned stayed
        `running`, owned by a worker that kept heartbeating, so no sweeper ever took it and no
        terminal state ever came (a PostgreSQL outage or failover longer than 30 s left every
        run that ended meanwhile like that). When the worker stops, the run is handed to the
        sweepers with the rest of its runs; if another worker declared this one lost meanwhile,
        the write is fenced out and the run keeps the terminal state the sweeper gave it.
        """
        delay = 0.2
        loop = asyncio.get_running_loop()
        warn_at: float | None = loop.time() + max(self.settings.lease_seconds * 3, 30)
        while True:
            try:
                final = await self.db.write(
                    _commit_finish, self, job, fence, cancel.reason, outcome, text
                )
                break
            except Exception as exc:
                if warn_at is not None and loop.time() > warn_at:
                    warn_at = None
                    log.error(
                        "finish_still_failing",
                        run_id=str(fence.run_id),
                        error_class=type(exc).__name__,
                    )
                else:
                    log.warning(
                        "finish_failed", run_id=str(fence.run_id), error_class=type(exc).__name__
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if final is None:
            log.warning("run_fenced_out", run_id=str(fence.run_id), attempt=fence.attempt)
            return
        if final["status"] == RunStatus.QUEUED:
            log.info("run_handed_back", run_id=str(fence.run_id), attempt=fence.attempt)
            return
        self.metrics.runs_finished.labels(status=str(final["status"])).inc()
        if final["started_at"] is not None and final["finished_at"] is not None:
            self.metrics.run_duration.observe(
                (final["finished_at"] - final["started_at"]).total_seconds()
            )
        log.info(
            "run_finished",
            run_id=str(fence.run_id),
            tenant_id=str(job.tenant_id),
            status=str(final["status"]),
            error_type=final["error_type"],
        )

    async def _holds_lease(self, fence: Fence) -> bool:
        try:
            return await self.db.read(repository.holds_lease, fence)
        except Exception:
            return False  # cannot tell: write nothing (a sweeper settles it if it is lost)

    def _on_cancel(self, topic: str, payload: Any) -> None:
        try:
            run_id = uuid.UUID(topic.partition(":")[2])
        except ValueError:
            return
        item = self._in_flight.get(run_id)
        if item is None or item.cancel.is_set():
            return
        if isinstance(payload, str):  # handed over in this process, with the reason
            item.cancel.set("cancel_requested", payload or None)
        else:
            self.spawn_background(self._check_cancel(item))

    async def _check_cancel(self, item: _InFlight) -> None:
        try:
            state = await self.db.read(repository.cancel_state, item.fence.run_id)
        except Exception:
            return  # the heartbeat's reconciliation will see it
        fence = item.fence
        if state is None or state.attempt != fence.attempt or state.lease_owner != fence.owner:
            item.cancel.set("lease_lost")
        elif state.status == RunStatus.CANCELLING:
            item.cancel.set("cancel_requested", state.cancel_reason)

    # --- liveness -----------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        await self._registered.wait()
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            # Only runs claimed before the query starts can be checked against its answer: a
            # claim that commits while it runs is missing from it without being lost.
            known = dict(self._in_flight)
            try:
                executing = await self.db.write_reserved(
                    _heartbeat, self.owner, len(known), self.settings
                )
            except Exception as exc:
                log.warning("heartbeat_failed", error_class=type(exc).__name__)
                continue
            self._reconcile(known, executing)
            await self._touch_health_file()

    def _reconcile(self, known: dict[uuid.UUID, _InFlight], executing: Sequence[Any]) -> None:
        """Align the runs that were in flight when the heartbeat started with what the
        database says this worker executes."""
        mine = {row.id: row for row in executing}
        for run_id, item in known.items():
            if item.finishing or item.cancel.is_set() or run_id not in self._in_flight:
                continue
            row = mine.get(run_id)
            if row is None or row.attempt != item.fence.attempt:
                item.cancel.set("lease_lost")
            elif row.status == RunStatus.CANCELLING:
                item.cancel.set("cancel_requested", row.cancel_reason)

    async def _touch_health_file(self) -> None:
        """Prove liveness to a container health check: touch the file after a heartbeat."""
        path = self.settings.worker_health_file
        if path is None:
            return
        try:
            await asyncio.to_thread(Path(path).touch)
        except OSError as exc:
            log.warning("health_file_failed", error_class=type(exc).__name__)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await sweep_lost_runs(self.db, self.policy, me=self.owner, settings=self.settings)
            except Exception as exc:
                log.warning("sweep_failed", error_class=type(exc).__name__)
            await asyncio.sleep(self.settings.sweep_seconds)


async def _cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _claim(session: AsyncSession, owner: str, limit: int) -> list[ClaimedRun]:
    now = utcnow()
    claimed = await repository.claim_queued(session, owner=owner, limit=limit, now=now)
    for run in claimed:
        started = EventRecord(
            run.started_seq, "run_started", {"attempt": run.attempt, "worker": owner}, now
        )
        hand_off(session, run_topic(run.id), RunUpdate(run.id, [started]))
    return claimed


async def _heartbeat(
    session: AsyncSession, owner: str, in_flight: int, settings: Settings
) -> list[Any]:
    now = utcnow()
    if not await repository.heartbeat(session, owner, now=now, in_flight=in_flight):
        # a sweeper removed the row (this process was silent for long): register again
        await repository.register_worker(
            session,
            {
                "id": owner,
                "host": socket.gethostname()[:255],
                "pid": os.getpid(),
                "version": __version__,
                "concurrency": settings.worker_concurrency,
                "in_flight": in_flight,
                "started_at": now,
                "heartbeat_at": now,
            },
        )
    return await repository.executing_runs_of(session, owner)


async def _commit_finish(
    session: AsyncSession,
    worker: Worker,
    job: RunJob,
    fence: Fence,
    stop_reason: str | None,
    outcome: RunOutcome,
    text: str | None,
) -> Any | None:
    """The terminal transaction of an attempt; the run's row, or None when fenced out."""
    leading = [("agent_message_delta", {"delta": text})] if text else []
    common: dict[str, Any] = {
        "run_id": fence.run_id,
        "attempt": fence.attempt,
        "policy": worker.policy,
        "fence": fence,
        "leading_events": leading,
        "session_role": job.inputs.get("session_role"),
    }
    if stop_reason == "shutdown":
        return await _hand_back(session, job, fence, outcome, leading, common)
    row = await commit_terminal(
        session,
        outcome=outcome,
        expected=RunStatus.RUNNING,
        layer_specs=outcome.layer_specs,
        **common,
    )
    if row is not None:
        return row
    state = await repository.cancel_state(session, fence.run_id)
    if state is None or state.status != RunStatus.CANCELLING:
        return None
    cancelled = cancelled_outcome(outcome, state.cancel_reason, "cancel_requested")
    return await commit_terminal(
        session,
        outcome=cancelled,
        expected=RunStatus.CANCELLING,
        layer_specs=outcome.layer_specs,
        **common,
    )


async def _hand_back(
    session: AsyncSession,
    job: RunJob,
    fence: Fence,
    outcome: RunOutcome,
    leading: list[tuple[str, dict[str, Any]]],
    common: dict[str, Any],
) -> Any | None:
    """A run stopped by shutdown: queue it again as its next attempt when its retry policy
    allows, else fail it `worker_shutdown`; its session keeps its previous snapshot. A run that
    was being cancelled ends `cancelled`."""
    state = await repository.cancel_state(session, fence.run_id)
    if state is None or state.lease_owner != fence.owner or state.attempt != fence.attempt:
        return None
    if state.status == RunStatus.CANCELLING:
        cancelled = cancelled_outcome(outcome, state.cancel_reason, "cancel_requested")
        return await commit_terminal(
            session, outcome=cancelled, expected=RunStatus.CANCELLING, **common
        )
    if fence.attempt < job.max_attempts:
        return await requeue(
            session, fence.run_id, fence.attempt, ErrorType.WORKER_SHUTDOWN, leading=leading
        )
    failed = RunOutcome(
        status=RunStatus.FAILED,
        usage=outcome.usage,
        error=f"the worker executing attempt {fence.attempt} shut down before the run ended",
        error_type=ErrorType.WORKER_SHUTDOWN,
        reason=ErrorType.WORKER_SHUTDOWN,
    )
    return await commit_terminal(session, outcome=failed, expected=RunStatus.RUNNING, **common)


async def requeue(
    session: AsyncSession,
    run_id: uuid.UUID,
    attempt: int,
    reason: str,
    *,
    leading: Sequence[tuple[str, dict[str, Any]]] = (),
) -> Any | None:
    """Queue an executing run again as attempt `attempt + 1` (fenced on `attempt`)."""
    now = utcnow()
    items = [*leading, ("run_requeued", {"attempt": attempt + 1, "reason": reason})]
    row = await repository.settle(
        session,
        run_id,
        statuses=(RunStatus.RUNNING,),
        values={
            "status": RunStatus.QUEUED,
            "attempt": attempt + 1,
            "lease_owner": None,
            "started_at": None,
            "queued_at": now,
        },
        event_count=len(items),
        attempt=attempt,
    )
    if row is None:
        return None
    first = int(row["last_event_seq"]) - len(items) + 1
    await repository.insert_events(session, run_id, row["tenant_id"], first, items, now)
    records = [EventRecord(first + i, kind, data, now) for i, (kind, data) in enumerate(items)]
    hand_off(session, run_topic(run_id), RunUpdate(run_id, records))
    notify(session, QUEUE_TOPIC)
    return row


async def sweep_lost_runs(
    db: Database, policy: SessionPolicy, *, me: str, settings: Settings, batch: int = 200
) -> int:
    """Settle runs whose worker is gone (stale heartbeat, or no row). Returns how many.

    Each settled run is logged (`run_lost`) once its transaction committed: a write job may run
    more than once (`Database._commit_batch`), and a line for a commit that failed would be false.
    """
    settled = await db.write(_sweep, policy, me, settings, batch)
    for run_id, attempt, owner, retried in settled:
        log.warning("run_lost", run_id=str(run_id), attempt=attempt, owner=owner, retried=retried)
    return len(settled)


async def _sweep(
    session: AsyncSession, policy: SessionPolicy, me: str, settings: Settings, batch: int
) -> list[tuple[uuid.UUID, int, str | None, bool]]:
    """The sweep's write job: (run id, attempt, owner, retried) of each run it settled."""
    now = utcnow()
    settled: list[tuple[uuid.UUID, int, str | None, bool]] = []
    lost = await repository.lost_runs(
        session, me=me, stale_before=now - timedelta(seconds=settings.lease_seconds), limit=batch
    )
    for run in lost:
        retried = False
        if run.status == RunStatus.CANCELLING:
            # a cancel was asked for: honour it, never start the run again
            outcome = cancelled_outcome(None, run.cancel_reason, "cancel_requested")
            await commit_terminal(
                session,
                run_id=run.id,
                attempt=run.attempt,
                outcome=outcome,
                policy=policy,
                statuses=(RunStatus.CANCELLING,),
                session_role=run.inputs.get("session_role"),
            )
        elif run.attempt < run.max_attempts:
            retried = True
            await requeue(session, run.id, run.attempt, ErrorType.WORKER_LOST)
        else:
            outcome = RunOutcome(
                status=RunStatus.FAILED,
                error=f"the worker executing attempt {run.attempt} stopped heartbeating",
                error_type=ErrorType.WORKER_LOST,
                reason=ErrorType.WORKER_LOST,
            )
            await commit_terminal(
                session,
                run_id=run.id,
                attempt=run.attempt,
                outcome=outcome,
                policy=policy,
                statuses=(RunStatus.RUNNING,),
                session_role=run.inputs.get("session_role"),
            )
        settled.append((run.id, run.attempt, run.lease_owner, retried))
    dead_before = now - timedelta(seconds=settings.lease_seconds * _DEAD_WORKER_FACTOR)
    await repository.remove_dead_workers(session, dead_before=dead_before)
    return settled
