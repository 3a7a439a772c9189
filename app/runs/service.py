"""Run use cases behind the HTTP API: create, read, list, cancel, wait, events.

Functions take the request's database session and never commit (the request dependency does).
Notifications are arranged inside the transaction (`Notifier.notify_in_transaction`) so they are
delivered only if it commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import SessionFactory, is_database_unavailable
from app.errors import Conflict, NotFound, TooManyRequests
from app.keys import Principal
from app.layers import LayerRegistry
from app.models import Run, RunEvent, RunStatus, WorkflowAgentRuntimeSession
from app.models.base import new_id, utcnow
from app.notifier import QUEUE_TOPIC, Notifier, run_topic
from app.runs import repository
from app.runs.manager import cancel_topic, commit_terminal
from app.runs.outcome import ErrorType, RunOutcome
from app.runs.schemas import CreateRunRequest, RunEventRead
from app.runs.validation import replayable_specs, validate_run_request
from app.sessions import scope

_OUTAGE_RETRY_SECONDS = 0.5


def request_fingerprint(request: CreateRunRequest) -> str:
    """SHA-256 of the canonical JSON of a request, without its idempotency key."""
    body = request.model_dump(mode="json", exclude={"idempotency_key"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_run(
    session: AsyncSession,
    *,
    principal: Principal,
    request: CreateRunRequest,
    idempotency_key: str | None,
    registry: LayerRegistry,
    settings: Settings,
    notifier: Notifier,
    attach_session: WorkflowAgentRuntimeSession | None = None,
    extra_inputs: dict[str, Any] | None = None,
) -> tuple[Run, bool]:
    """Validate and queue a run. Returns (run, created); created is False for a replay.

    Raises `ValidationFailed` (422) before anything is written, `Conflict`
    (`idempotency_key_reused`) when the key was used for a different request, `Conflict`
    (`session_busy`) when the request's session has a run in flight, and `TooManyRequests` when
    the tenant has too many queued runs. `attach_session` links the run to a session row the
    caller already occupies (a retire's cleanup run); `extra_inputs` are stored with the run.
    """
    key = idempotency_key or request.idempotency_key
    fingerprint = request_fingerprint(request)
    if key is not None:
        existing = await repository.get_run_by_key(session, principal.tenant_id, key)
        if existing is not None:
            return _replay(existing, fingerprint), False

    snapshot = request.session_snapshot
    if request.session is not None:
        snapshot = await scope.resolve_snapshot(
            session, principal.tenant_id, request.session, request.session_snapshot
        )
    plan = validate_run_request(
        request, registry, settings, tenant_id=str(principal.tenant_id), snapshot=snapshot
    )
    queued = await repository.count_queued(session, principal.tenant_id)
    if queued >= settings.max_queued_runs_per_tenant:
        raise TooManyRequests(
            f"this tenant already has {queued} queued runs; retry later",
            code="queue_full",
            headers={"Retry-After": "5"},
        )
    now = utcnow()
    run_id = new_id()
    run = Run(
        id=run_id,
        tenant_id=principal.tenant_id,
        status=RunStatus.QUEUED,
        purpose=request.purpose,
        attempt=1,
        max_attempts=1 + request.retry.on_worker_lost,
        composition=request.composition.model_dump(mode="json"),
        inputs={
            "configs": plan.configs,
            "on_exit": request.on_exit.model_dump(mode="json"),
            "deferred_tool_results": (
                request.deferred_tool_results.model_dump(mode="json")
                if request.deferred_tool_results is not None
                else None
            ),
            "max_model_requests": plan.max_model_requests,
            "timeout_seconds": plan.timeout_seconds,
            "session_layer_specs": replayable_specs(request.composition, registry),
            **(extra_inputs or {}),
        },
        session_snapshot_in=snapshot,
        session_id=attach_session.id if attach_session is not None else None,
        idempotency_key=key,
        request_fingerprint=fingerprint,
        metadata_=request.metadata,
        created_at=now,
        queued_at=now,
        updated_at=now,
    )
    # One savepoint for occupying the session and inserting the run: a concurrent duplicate
    # (same idempotency key) rolls back both, so no session is left pointing at a phantom run.
    try:
        async with session.begin_nested():
            if request.session is not None:
                row = await scope.occupy(
                    session,
                    principal.tenant_id,
                    request.session,
                    run_id=run_id,
                    expected_snapshot=snapshot,
                )
                run.session_id = row.id
            session.add(run)
            await session.flush()
    except (IntegrityError, Conflict):
        existing = (
            await repository.get_run_by_key(session, principal.tenant_id, key) if key else None
        )
        if existing is None:
            raise
        return _replay(existing, fingerprint), False
    await repository.append_event(
        session, run.id, "run_queued", {"attempt": 1, "purpose": request.purpose.value}
    )
    await notifier.notify_in_transaction(session, QUEUE_TOPIC, run_topic(run.id))
    return run, True


def _replay(existing: Run, fingerprint: str) -> Run:
    if existing.request_fingerprint != fingerprint:
        raise Conflict(
            "this idempotency key was already used for a different request",
            code="idempotency_key_reused",
            details={"run_id": str(existing.id)},
        )
    return existing


async def get_run(session: AsyncSession, principal: Principal, run_id: uuid.UUID) -> Run:
    run = await repository.get_run(session, principal.tenant_id, run_id)
    if run is None:
        raise NotFound("run not found", code="run_not_found")
    return run


async def cancel_run(
    session: AsyncSession,
    *,
    principal: Principal,
    run_id: uuid.UUID,
    reason: str | None,
    notifier: Notifier,
) -> Run:
    """Cancel a run. Queued: cancelled at once. Running: `cancelling` until its worker exits.

    Idempotent for runs already cancelling or cancelled; `Conflict` (`run_already_finished`)
    when the run succeeded, paused or failed.
    """
    run = await repository.lock_run(session, run_id, tenant_id=principal.tenant_id)
    if run is None:
        raise NotFound("run not found", code="run_not_found")
    if run.status is RunStatus.QUEUED:
        outcome = RunOutcome(
            status=RunStatus.CANCELLED,
            error=reason or "the run was cancelled before it started",
            error_type=ErrorType.CANCELLED,
            reason="cancel_requested",
        )
        now = utcnow()
        run.cancel_requested_at, run.cancel_reason = now, reason
        await session.flush()
        await commit_terminal(session, notifier, run, outcome)
    elif run.status is RunStatus.RUNNING:
        now = utcnow()
        await session.execute(
            update(Run)
            .where(Run.id == run.id, Run.status == RunStatus.RUNNING)
            .values(
                status=RunStatus.CANCELLING,
                cancel_requested_at=now,
                cancel_reason=reason,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        await repository.append_event(session, run.id, "run_cancelling", {"reason": reason})
        await notifier.notify_in_transaction(session, run_topic(run.id), cancel_topic(run.id))
    elif run.status in (RunStatus.CANCELLING, RunStatus.CANCELLED):
        pass
    else:
        raise Conflict(
            f"the run already {run.status.value}; it can no longer be cancelled",
            code="run_already_finished",
            details={"status": run.status.value},
        )
    await session.flush()
    refreshed = await repository.lock_run(session, run.id, tenant_id=principal.tenant_id)
    assert refreshed is not None
    return refreshed


async def wait_for_run(
    session_factory: SessionFactory,
    notifier: Notifier,
    *,
    principal: Principal,
    run_id: uuid.UUID,
    timeout: float,
) -> Run:
    """The run as soon as it is terminal, or as it is at the deadline. Woken by notifications."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with notifier.subscribe(run_topic(run_id)) as wake:
        while True:
            try:
                async with session_factory() as session:
                    run = await repository.get_run(session, principal.tenant_id, run_id)
            except Exception as error:
                # the database is away: keep waiting (and retrying) until the deadline
                if not is_database_unavailable(error) or loop.time() >= deadline:
                    raise
                await asyncio.sleep(min(_OUTAGE_RETRY_SECONDS, deadline - loop.time()))
                continue
            if run is None:
                raise NotFound("run not found", code="run_not_found")
            remaining = deadline - loop.time()
            if run.status.is_terminal or remaining <= 0:
                return run
            await wake.wait(remaining)


async def list_events(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID, *, after: int, limit: int
) -> list[RunEvent]:
    await get_run(session, principal, run_id)
    return await repository.list_events(session, run_id, after=after, limit=limit)


TERMINAL_EVENT_TYPES = frozenset({"run_succeeded", "run_paused", "run_failed", "run_cancelled"})


def event_read(event: RunEvent) -> RunEventRead:
    return RunEventRead(
        seq=event.seq,
        run_id=event.run_id,
        type=event.type,
        data=event.data,
        created_at=event.created_at,
    )


async def follow_events(
    session_factory: SessionFactory,
    notifier: Notifier,
    run_id: uuid.UUID,
    *,
    after: int,
    keepalive_seconds: float,
) -> AsyncIterator[RunEventRead | None]:
    """Stored events after `after`, then live ones; ends after the terminal event.

    Yields None when `keepalive_seconds` pass without an event (the caller sends a keep-alive).
    Subscribes before reading, so an event committed between a read and the wait still wakes it.
    """
    cursor = after
    async with notifier.subscribe(run_topic(run_id)) as wake:
        while True:
            try:
                async with session_factory() as session:
                    # the status is read first: a terminal event committed after this read is
                    # still found by the events query below
                    status = await session.scalar(select(Run.status).where(Run.id == run_id))
                    events = await repository.list_events(session, run_id, after=cursor, limit=500)
            except Exception as error:
                if not is_database_unavailable(error):
                    raise
                yield None  # keep the stream alive through a database outage
                await asyncio.sleep(_OUTAGE_RETRY_SECONDS)
                continue
            for event in events:
                cursor = event.seq
                yield event_read(event)
                if event.type in TERMINAL_EVENT_TYPES:
                    return
            if not events and (status is None or status.is_terminal):
                return  # resumed at or after the terminal event: nothing more will come
            if len(events) == 500:
                continue
            if not await wake.wait(keepalive_seconds):
                yield None
