"""The worker: claims queued runs, holds their leases, executes them, commits one terminal state.

One `Worker` per process that executes runs (the embedded `strata serve`, or `strata worker`).

- **Claiming.** `_claim_loop` claims up to `worker_concurrency - in_flight` runs at a time. It is
  woken by the `queue` notification (a run was queued, or one of its own slots freed) and falls
  back to polling every `worker_poll_seconds`.
- **Leases.** `_heartbeat_loop` renews the leases of all in-flight runs in one statement per run
  every `heartbeat_seconds`. A renewal that matches no row means the lease was lost (the sweeper
  failed or requeued the run): the execution is aborted and writes nothing more, because every
  write is fenced by (run id, attempt, lease owner) — see `app.runs.repository.Fence`.
- **Cancel.** `POST /cancel` moves a running run to `cancelling` and notifies `cancel:<id>`; the
  worker listening for it (or noticing the status at the next heartbeat) stops the agent, the
  runner exits every layer, and `_finish` commits `cancelled`.
- **Finish.** `_finish` locks the row through the fence, writes the terminal event and the
  terminal columns in one transaction, and updates the run's runtime session in it.
  A run that is `cancelling` when its outcome arrives ends `cancelled`, whatever the outcome.
- **Lost workers.** `_sweep_loop` (in every worker; safe concurrently thanks to SKIP LOCKED and
  the status conditions) fails runs whose lease lapsed with `error_type=worker_lost`, or queues
  them again as a new attempt when the request allowed a retry.
- **Shutdown.** `stop()` stops claiming, lets in-flight runs finish for `shutdown_grace_seconds`,
  then cancels the rest with `reason=shutdown` and waits for them to exit their layers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import SessionFactory, unit_of_work
from app.metrics import Metrics
from app.models import Run, RunPurpose, RunStatus
from app.models.base import utcnow
from app.notifier import QUEUE_TOPIC, Notifier, run_topic
from app.runs import repository
from app.runs.outcome import TERMINAL_EVENT, ErrorType, RunOutcome
from app.runs.repository import Fence
from app.sessions.scope import on_run_terminal

log = structlog.get_logger("strata.worker")


def cancel_topic(run_id: object) -> str:
    return f"cancel:{run_id}"


@dataclass(frozen=True)
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

    @classmethod
    def from_run(cls, run: Run) -> RunJob:
        return cls(
            run_id=run.id,
            tenant_id=run.tenant_id,
            attempt=run.attempt,
            purpose=run.purpose,
            composition=run.composition,
            inputs=run.inputs,
            session_snapshot_in=run.session_snapshot_in,
            metadata=run.metadata_,
            session_id=run.session_id,
        )


class EventSink(Protocol):
    async def emit(self, event_type: str, data: dict[str, Any]) -> None: ...

    async def text_delta(self, text: str) -> None: ...


@dataclass
class CancelSignal:
    """Set when the run must stop; `reason` says why (a cancel request, shutdown, lost lease)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    message: str | None = None

    def set(self, reason: str, message: str | None = None) -> None:
        if not self.event.is_set():
            self.reason, self.message = reason, message
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


class Runner(Protocol):
    async def execute(self, job: RunJob, sink: EventSink, cancel: CancelSignal) -> RunOutcome: ...


class _FencedSink:
    """Writes a run's events through its fence; coalesces text deltas.

    Text deltas are buffered and written as one `agent_message_delta` event when
    `event_text_flush_seconds` passed since the first buffered delta, when the buffer reaches
    `event_text_flush_chars`, or before any other event. Writes are serialized by one lock, in
    order, and `flush()` returns only after every earlier write finished, so the runner's final
    flush completes before the terminal event is committed. A write that matches no row (stale
    fence) aborts the execution through the cancel signal.
    """

    def __init__(self, worker: Worker, fence: Fence, cancel: CancelSignal) -> None:
        self._worker = worker
        self._fence = fence
        self._cancel = cancel
        self._buffer: list[str] = []
        self._buffered = 0
        self._flush_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self._cancel_timer()
        async with self._lock:
            await self._flush_locked()
            await self._write_locked(event_type, data)

    async def text_delta(self, text: str) -> None:
        if not text:
            return
        self._buffer.append(text)
        self._buffered += len(text)
        if self._buffered >= self._worker.settings.event_text_flush_chars:
            await self.flush()
        elif self._flush_task is None:
            self._flush_task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._worker.settings.event_text_flush_seconds)
        # From here on nobody cancels this task: `_flush_task` is only set while it sleeps,
        # so a write is never interrupted halfway.
        self._flush_task = None
        await self.flush()

    def _cancel_timer(self) -> None:
        task = self._flush_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            self._flush_task = None

    async def flush(self) -> None:
        """Write buffered text now; returns after any write already in progress, too."""
        self._cancel_timer()
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if not self._buffer:
            return
        text, self._buffer, self._buffered = "".join(self._buffer), [], 0
        await self._write_locked("agent_message_delta", {"delta": text})

    async def _write_locked(self, event_type: str, data: dict[str, Any]) -> None:
        if self._cancel.reason == "lease_lost":
            return
        try:
            async with unit_of_work(self._worker.session_factory) as session:
                seq = await repository.append_event(
                    session, self._fence.run_id, event_type, data, fence=self._fence
                )
                if seq is not None:
                    await self._worker.notifier.notify_in_transaction(
                        session, run_topic(self._fence.run_id)
                    )
        except Exception as exc:  # the database is down: lose the event, not the run
            log.warning("event_write_failed", run_id=str(self._fence.run_id), error=str(exc))
            return
        if seq is None:
            self._cancel.set("lease_lost")


@dataclass
class _InFlight:
    fence: Fence
    cancel: CancelSignal
    task: asyncio.Task[None]


class Worker:
    """Executes queued runs; see the module docstring for the protocol."""

    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory,
        notifier: Notifier,
        runner: Runner,
        *,
        metrics: Metrics | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.notifier = notifier
        self.runner = runner
        self.metrics = metrics or Metrics()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="strata-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="strata-heartbeat"),
            asyncio.create_task(self._sweep_loop(), name="strata-sweep"),
        ]
        log.info("worker_started", owner=self.owner, concurrency=self.settings.worker_concurrency)

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; wait up to the grace period; cancel what is left; wait for it."""
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        self._stopping.set()
        claim = self._loops[0] if self._loops else None
        if claim is not None:
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claim
        tasks = [item.task for item in self._in_flight.values()]
        if tasks:
            log.info("worker_draining", runs=len(tasks), grace_seconds=grace)
            await asyncio.wait(tasks, timeout=grace)
        for item in list(self._in_flight.values()):
            item.cancel.set("shutdown", "the worker shut down")
        remaining = [item.task for item in self._in_flight.values()]
        if remaining:
            await asyncio.wait(remaining, timeout=max(self.settings.lease_seconds, 5.0))
        for loop in self._loops[1:]:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        for item in list(self._in_flight.values()):  # still stuck: the sweeper will take them
            item.task.cancel()
        log.info("worker_stopped", owner=self.owner)

    # --- claiming -----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = 0.1
        async with self.notifier.subscribe(QUEUE_TOPIC) as wake:
            while not self._stopping.is_set():
                free = self.settings.worker_concurrency - len(self._in_flight)
                claimed: list[Run] = []
                if free > 0:
                    try:
                        claimed = await self._claim(free)
                        backoff = 0.1
                    except Exception as exc:
                        log.warning("claim_failed", error=str(exc), retry_in=backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                for run in claimed:
                    self._spawn(run)
                if free > 0 and len(claimed) == free:
                    continue  # there may be more
                self._slot_freed.clear()
                waiter = asyncio.create_task(wake.wait(self.settings.worker_poll_seconds))
                freed = asyncio.create_task(self._slot_freed.wait())
                try:
                    await asyncio.wait({waiter, freed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    freed.cancel()

    async def _claim(self, limit: int) -> list[Run]:
        async with unit_of_work(self.session_factory) as session:
            runs = await repository.claim_queued(
                session, owner=self.owner, limit=limit, lease_seconds=self.settings.lease_seconds
            )
            for run in runs:
                await repository.append_event(
                    session,
                    run.id,
                    "run_started",
                    {"attempt": run.attempt, "worker": self.owner},
                    fence=Fence(run.id, run.attempt, self.owner),
                )
                await self.notifier.notify_in_transaction(session, run_topic(run.id))
        return runs

    def _spawn(self, run: Run) -> None:
        fence = Fence(run.id, run.attempt, self.owner)
        cancel = CancelSignal()
        job = RunJob.from_run(run)
        task = asyncio.create_task(self._execute(job, fence, cancel), name=f"run-{run.id}")
        self._in_flight[run.id] = _InFlight(fence, cancel, task)
        self.metrics.in_flight.set(len(self._in_flight))
        log.info(
            "run_claimed", run_id=str(run.id), tenant_id=str(run.tenant_id), attempt=run.attempt
        )

    # --- executing ----------------------------------------------------------------------------

    async def _execute(self, job: RunJob, fence: Fence, cancel: CancelSignal) -> None:
        try:
            watcher = asyncio.create_task(self._watch_cancel(fence, cancel))
            try:
                outcome = await self._run_guarded(job, fence, cancel)
            finally:
                watcher.cancel()
            if cancel.reason == "lease_lost":
                log.warning("run_lease_lost", run_id=str(job.run_id), attempt=job.attempt)
                return
            await self._finish(fence, outcome)
        finally:
            self._in_flight.pop(job.run_id, None)
            self.metrics.in_flight.set(len(self._in_flight))
            self._slot_freed.set()

    async def _run_guarded(self, job: RunJob, fence: Fence, cancel: CancelSignal) -> RunOutcome:
        sink = _FencedSink(self, fence, cancel)
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
        with contextlib.suppress(Exception):
            await sink.flush()
        return outcome

    async def _watch_cancel(self, fence: Fence, cancel: CancelSignal) -> None:
        async with self.notifier.subscribe(cancel_topic(fence.run_id)) as wake:
            while not cancel.is_set():
                if await wake.wait(None):
                    await self._check_cancel(fence, cancel)

    async def _check_cancel(self, fence: Fence, cancel: CancelSignal) -> None:
        try:
            async with self.session_factory() as session:
                run = await session.get(Run, fence.run_id)
        except Exception:
            return
        if run is None or run.attempt != fence.attempt or run.lease_owner != fence.owner:
            cancel.set("lease_lost")
        elif run.status is RunStatus.CANCELLING:
            cancel.set("cancel_requested", run.cancel_reason)
        elif run.status.is_terminal:
            cancel.set("lease_lost")

    async def _finish(self, fence: Fence, outcome: RunOutcome) -> None:
        delay = 0.2
        deadline = asyncio.get_running_loop().time() + max(self.settings.lease_seconds * 3, 30)
        while True:
            try:
                await self._commit_terminal(fence, outcome)
                return
            except Exception as exc:
                if asyncio.get_running_loop().time() > deadline:
                    log.error("finish_gave_up", run_id=str(fence.run_id), error=str(exc))
                    return
                log.warning("finish_failed", run_id=str(fence.run_id), error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _commit_terminal(self, fence: Fence, outcome: RunOutcome) -> None:
        async with unit_of_work(self.session_factory) as session:
            run = await repository.lock_for_finish(session, fence)
            if run is None:
                log.warning("run_fenced_out", run_id=str(fence.run_id), attempt=fence.attempt)
                return
            if run.status is RunStatus.CANCELLING and outcome.status is not RunStatus.CANCELLED:
                outcome = cancelled_outcome(outcome, run.cancel_reason, "cancel_requested")
            await commit_terminal(session, self.notifier, run, outcome)
            started = run.started_at
        self.metrics.runs_finished.labels(status=outcome.status.value).inc()
        if started is not None:
            self.metrics.run_duration.observe((utcnow() - started).total_seconds())
        log.info(
            "run_finished",
            run_id=str(fence.run_id),
            status=outcome.status.value,
            error_type=outcome.error_type,
        )

    # --- leases -------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            await self._touch_health_file()
            for run_id, item in list(self._in_flight.items()):
                try:
                    async with unit_of_work(self.session_factory) as session:
                        status = await repository.renew_lease(
                            session, item.fence, lease_seconds=self.settings.lease_seconds
                        )
                except Exception as exc:
                    log.warning("heartbeat_failed", run_id=str(run_id), error=str(exc))
                    continue
                if status is None:
                    item.cancel.set("lease_lost")
                elif status is RunStatus.CANCELLING:
                    await self._check_cancel(item.fence, item.cancel)

    async def _touch_health_file(self) -> None:
        """Prove liveness to a container health check: touch the file after a database trip."""
        path = self.settings.worker_health_file
        if path is None:
            return
        try:
            async with self.session_factory() as session:
                await session.execute(text("SELECT 1"))
            await asyncio.to_thread(Path(path).touch)
        except Exception as exc:
            log.warning("health_check_failed", error=str(exc))

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await sweep_lost_runs(self.session_factory, self.notifier)
            except Exception as exc:
                log.warning("sweep_failed", error=str(exc))
            await asyncio.sleep(self.settings.sweep_seconds)


def cancelled_outcome(outcome: RunOutcome, message: str | None, reason: str) -> RunOutcome:
    """Turn an attempt's outcome into `cancelled`, keeping its snapshot and usage."""
    return RunOutcome(
        status=RunStatus.CANCELLED,
        session_snapshot=outcome.session_snapshot,
        usage=outcome.usage,
        error=message or "the run was cancelled",
        error_type=ErrorType.CANCELLED,
        reason=reason,
    )


async def commit_terminal(
    session: AsyncSession, notifier: Notifier, run: Run, outcome: RunOutcome
) -> None:
    """Write the terminal event and the terminal columns of a locked, non-terminal run.

    The event goes first: `append_event` refuses a terminal run, so the order guarantees the
    terminal event is the last one. The run's runtime session (if any) is updated in the same
    transaction (`app.sessions.scope.on_run_terminal`).
    """
    data = outcome.payload()
    data["attempt"] = run.attempt
    seq = await repository.append_event(session, run.id, TERMINAL_EVENT[outcome.status], data)
    if seq is None:  # already terminal: exactly one terminal transition
        return
    now = utcnow()
    await session.execute(
        update(Run)
        .where(Run.id == run.id)
        .values(
            status=outcome.status,
            output=outcome.output,
            deferred_tool_call=outcome.deferred_tool_call,
            session_snapshot=outcome.session_snapshot,
            usage=outcome.usage,
            error=outcome.error,
            error_type=outcome.error_type,
            reason=outcome.reason,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    run.status = outcome.status
    await on_run_terminal(session, notifier, run, outcome)
    await notifier.notify_in_transaction(session, run_topic(run.id))


async def sweep_lost_runs(
    session_factory: SessionFactory, notifier: Notifier, *, batch: int = 100
) -> int:
    """Settle runs whose lease lapsed (their worker is gone). Returns how many.

    A run being cancelled ends `cancelled`; one that allowed a retry is queued again as the next
    attempt; any other ends `failed` with `error_type=worker_lost`.
    """
    async with unit_of_work(session_factory) as session:
        lost = await repository.expired_leases(session, now=utcnow(), limit=batch)
        for run in lost:
            retried = False
            if run.status is RunStatus.CANCELLING:
                # a cancel was asked for: honour it, never start the run again
                outcome = RunOutcome(
                    status=RunStatus.CANCELLED,
                    error=run.cancel_reason or "the run was cancelled",
                    error_type=ErrorType.CANCELLED,
                    reason="cancel_requested",
                )
                await commit_terminal(session, notifier, run, outcome)
            elif run.attempt < run.max_attempts:
                retried = True
                await repository.append_event(
                    session,
                    run.id,
                    "run_requeued",
                    {"attempt": run.attempt + 1, "reason": ErrorType.WORKER_LOST},
                )
                now = utcnow()
                await session.execute(
                    update(Run)
                    .where(Run.id == run.id)
                    .values(
                        status=RunStatus.QUEUED,
                        attempt=run.attempt + 1,
                        lease_owner=None,
                        lease_expires_at=None,
                        heartbeat_at=None,
                        started_at=None,
                        queued_at=now,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                await notifier.notify_in_transaction(session, run_topic(run.id), QUEUE_TOPIC)
            else:
                outcome = RunOutcome(
                    status=RunStatus.FAILED,
                    error=f"the worker executing attempt {run.attempt} stopped heartbeating",
                    error_type=ErrorType.WORKER_LOST,
                    reason=ErrorType.WORKER_LOST,
                )
                await commit_terminal(session, notifier, run, outcome)
            log.warning("run_lost", run_id=str(run.id), attempt=run.attempt, retried=retried)
        return len(lost)
