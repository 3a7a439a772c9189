"""Run use cases behind the HTTP API: create, read, list, cancel, wait, events.

Writes go through `Database.write` (`app.db`): validation happens before, outside the writer, so a
422 never costs a transaction, and the job itself is a few statements. Notifications are recorded
in the transaction's outbox (`app.notifier`) and delivered only if it commits.

Waiting and streaming hold no database connection while they wait: they subscribe to the run's
topic first, read once, then sleep until a notification. In the process that executed the run,
the notification carries the events and the terminal row (`RunUpdate`), so nothing is read
again; from another process it is a hint followed by one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database, is_database_unavailable
from app.errors import Conflict, NotFound, TooManyRequests
from app.keys import Principal
from app.layers import LayerRegistry
from app.models import RunStatus
from app.models.base import new_id, utcnow
from app.notifier import QUEUE_TOPIC, Notifier, cancel_topic, hand_off, notify, run_topic
from app.runs import repository
from app.runs.outcome import TERMINAL_EVENT_TYPES, ErrorType, RunOutcome
from app.runs.policy import ResolvedSnapshot, SessionPolicy
from app.runs.repository import ClaimedRun
from app.runs.schemas import CreateRunRequest, RunEventRead, RunRead, SessionScope
from app.runs.terminal import EventRecord, RunUpdate, commit_terminal
from app.runs.validation import validate_run_request

_OUTAGE_RETRY_SECONDS = 0.5
STREAM_PAGE = 50
"""Events an event stream reads at a time. A stream reads its next page only once the previous
one was sent (`app.api.sse`), so this bounds what one stream holds; events are at most a few
KiB each (text deltas are flushed at `STRATA_EVENT_TEXT_FLUSH_CHARS`, tool results cut at
`STRATA_EVENT_TOOL_RESULT_MAX_CHARS`), the terminal event aside."""


NO_FINGERPRINT = ""
"""`request_fingerprint` of a run created without an idempotency key: nothing replays it."""


def request_fingerprint(request: CreateRunRequest) -> str:
    """SHA-256 of the canonical JSON of a request, without its idempotency key."""
    body = request.model_dump(mode="json", exclude={"idempotency_key"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_UNSET_ON_CREATE = dict.fromkeys(
    ("started_at", "finished_at", "cancel_requested_at", "cancel_reason"), None
)


def run_read(row: Any) -> RunRead:
    """The API view of a run from a row with `repository.READ_COLUMNS`, or from the values a
    run was just inserted with."""
    if isinstance(row, dict):
        return RunRead.model_validate({**_UNSET_ON_CREATE, **row})
    return RunRead.model_validate(row._mapping)


class QueueQuota:
    """The per-tenant cap on queued runs (`STRATA_MAX_QUEUED_RUNS_PER_TENANT`), 429 above it.

    Counting a tenant's queued runs for every POST would read thousands of index entries under
    load, so the count is refreshed at most every `refresh_seconds` per tenant and the runs this
    process queued since are added to it. Several API processes may therefore overshoot the cap
    by what they accept within one refresh; it is a guard against runaway clients, not a quota
    to the unit.
    """

    def __init__(self, limit: int, *, refresh_seconds: float = 1.0) -> None:
        self.limit = limit
        self.refresh_seconds = refresh_seconds
        self._counts: dict[uuid.UUID, tuple[float, int]] = {}

    async def check(self, db: Database, tenant_id: uuid.UUID) -> None:
        now = time.monotonic()
        entry = self._counts.get(tenant_id)
        if entry is None or now - entry[0] > self.refresh_seconds:
            count = await db.read(repository.count_queued, tenant_id)
            entry = self._counts[tenant_id] = (now, count)
        if entry[1] >= self.limit:
            raise TooManyRequests(
                f"this tenant already has {entry[1]} queued runs; retry later",
                code="queue_full",
                headers={"Retry-After": "5"},
            )

    def added(self, tenant_id: uuid.UUID) -> None:
        entry = self._counts.get(tenant_id)
        if entry is not None:
            self._counts[tenant_id] = (entry[0], entry[1] + 1)


_ROW_KEEPING_EVENTS = frozenset({"run_started", "agent_message_delta", "tool_call", "tool_result"})
"""Events whose append changes nothing of a running run that the API shows but `updated_at`."""


class RunDirectory:
    """What this process knows for certain about runs, so that a waiter need not read them.

    - runs its worker executes now (`executing`, shared with the worker): they are not terminal
      yet, and their terminal state will be handed over in this process (or, if another process
      ends them, a notification wakes the waiter, which then reads). While nothing but this
      process's own event appends touched such a run's row, the directory also knows the row
      as the API shows it (`running`): a long-poll that reaches its deadline answers it without
      a read (at load, hundreds of deadlines coincide: reading them all at once queued behind
      the pool for seconds, issue 13.6);
    - runs this process queued and of which it has heard nothing since (`pending`): the same
      holds for them, whichever worker claims them. A claim or an end in another process sends
      a bare notification, which drops the entry (and wakes a waiter, which then reads); so does
      a reconnect of the PostgreSQL listener, after which anything may have happened. On SQLite
      with several processes no notification crosses them: a waiter of a run another process
      ends reads near its deadline, as it would without the entry;
    - runs that reached a terminal state in this process recently (`terminal`, fed by the
      terminal hand-offs): a terminal state never changes.

    All are keyed by run id and remember the tenant, so a tenant never learns of another's run
    from here. Bounded: the newest `max_terminal` terminal runs, for `ttl_seconds`, and the
    newest `max_pending` pending ones. An entry that outlived its truth (a run ended elsewhere
    whose notification was missed) never yields a wrong answer, only a read near the deadline.
    It relies on what `app.notifier` promises: every write of a run's row notifies the run's
    topic, and in this process hands over the events it appended.
    """

    def __init__(
        self,
        *,
        max_terminal: int = 1024,
        ttl_seconds: float = 10.0,
        max_pending: int = 20_000,
    ) -> None:
        self.max_terminal = max_terminal
        self.ttl_seconds = ttl_seconds
        self.max_pending = max_pending
        self.executing: dict[uuid.UUID, ClaimedRun] = {}
        self._pending: dict[uuid.UUID, uuid.UUID] = {}
        self._terminal: dict[uuid.UUID, tuple[float, dict[str, Any]]] = {}

    def queued(self, run_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        if len(self._pending) >= self.max_pending:
            del self._pending[next(iter(self._pending))]  # the oldest
        self._pending[run_id] = tenant_id

    def listen(self, notifier: Notifier) -> None:
        notifier.add_prefix_listener("run", self._on_run_topic)
        notifier.add_reset_listener(self._forget_uncertain)

    def _forget_uncertain(self) -> None:
        self._pending.clear()
        for claimed in self.executing.values():
            claimed.row_known = False

    def _on_run_topic(self, topic: str, payload: Any) -> None:
        if isinstance(payload, RunUpdate):
            if payload.run is None:
                claimed = self.executing.get(payload.run_id)
                if claimed is not None and payload.events:
                    if all(event.type in _ROW_KEEPING_EVENTS for event in payload.events):
                        claimed.updated_at = payload.events[-1].created_at
                    else:
                        claimed.row_known = False  # cancelling, requeued…
                return
            self._pending.pop(payload.run_id, None)
            if len(self._terminal) >= self.max_terminal:
                del self._terminal[next(iter(self._terminal))]  # the oldest
            self._terminal[payload.run_id] = (time.monotonic(), payload.run)
        else:
            # news from another process (or with nothing handed over): no longer certain
            with contextlib.suppress(ValueError):
                run_id = uuid.UUID(topic.partition(":")[2])
                self._pending.pop(run_id, None)
                claimed = self.executing.get(run_id)
                if claimed is not None:
                    claimed.row_known = False

    def terminal(self, run_id: uuid.UUID, tenant_id: uuid.UUID) -> dict[str, Any] | None:
        entry = self._terminal.get(run_id)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl_seconds:
            del self._terminal[run_id]
            return None
        return entry[1] if entry[1]["tenant_id"] == tenant_id else None

    def executes(self, run_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
        """True when the run is known not to be terminal and to end in this process."""
        claimed = self.executing.get(run_id)
        if claimed is not None:
            return claimed.tenant_id == tenant_id
        return self._pending.get(run_id) == tenant_id

    def knows_row(self, run_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
        """True when this process executes the run and knows its row as a read would show it."""
        claimed = self.executing.get(run_id)
        return claimed is not None and claimed.tenant_id == tenant_id and claimed.row_known

    def running(self, run_id: uuid.UUID, tenant_id: uuid.UUID) -> RunRead | None:
        """The run as a read would show it now, when this process `knows_row`; else None."""
        if not self.knows_row(run_id, tenant_id):
            return None
        claimed = self.executing[run_id]
        return RunRead.model_construct(
            id=run_id,
            status=RunStatus.RUNNING,
            purpose=claimed.purpose,
            attempt=claimed.attempt,
            max_attempts=claimed.max_attempts,
            session_id=claimed.session_id,
            idempotency_key=claimed.idempotency_key,
            metadata=claimed.metadata,
            created_at=claimed.created_at,
            queued_at=claimed.queued_at,
            started_at=claimed.started_at,
            finished_at=None,
            updated_at=claimed.updated_at,
            cancel_requested_at=None,
            cancel_reason=None,
        )  # the outcome columns keep their defaults (null): a run's outcome is set as it ends


InsertHook = Callable[[AsyncSession], Awaitable[None]]
"""Runs in a run's insert transaction, after its session is occupied and before the run row is
written (a node run fixes its agent version there); what it raises rolls the insert back."""


@dataclass
class PreparedRun:
    """A validated run, ready to be inserted."""

    values: dict[str, Any]
    scope: SessionScope | None
    resolved: ResolvedSnapshot
    key: str | None
    fingerprint: str
    on_insert: InsertHook | None = None

    @property
    def id(self) -> uuid.UUID:
        run_id: uuid.UUID = self.values["id"]
        return run_id


def prepare_run(
    request: CreateRunRequest,
    *,
    tenant_id: uuid.UUID,
    registry: LayerRegistry,
    settings: Settings,
    resolved: ResolvedSnapshot,
    key: str | None,
    fingerprint: str,
    session_id: uuid.UUID | None = None,
    extra_inputs: dict[str, Any] | None = None,
) -> PreparedRun:
    """Validate `request` (`ValidationFailed`, 422) and build its row. Pure: no I/O."""
    plan = validate_run_request(
        request, registry, settings, tenant_id=str(tenant_id), snapshot=resolved.snapshot
    )
    now = utcnow()
    values = {
        "id": new_id(),
        "tenant_id": tenant_id,
        "status": RunStatus.QUEUED,
        "purpose": request.purpose,
        "attempt": 1,
        "max_attempts": 1 + request.retry.on_worker_lost,
        "composition": request.composition.model_dump(mode="json"),
        "inputs": {
            "on_exit": request.on_exit.model_dump(mode="json"),
            "deferred_tool_results": (
                request.deferred_tool_results.model_dump(mode="json")
                if request.deferred_tool_results is not None
                else None
            ),
            "max_model_requests": plan.max_model_requests,
            "timeout_seconds": plan.timeout_seconds,
            **(extra_inputs or {}),
        },
        # stored once: the request's own snapshot, or a reference to the run that made it
        "session_snapshot_in": resolved.snapshot if resolved.source_run_id is None else None,
        "snapshot_in_run_id": resolved.source_run_id,
        "session_id": session_id,
        "idempotency_key": key,
        "request_fingerprint": fingerprint,
        "metadata": request.metadata,
        "created_at": now,
        "queued_at": now,
        "updated_at": now,
        "last_event_seq": 1,
    }
    return PreparedRun(values, request.session, resolved, key, fingerprint)


async def create_run(
    db: Database,
    *,
    principal: Principal,
    request: CreateRunRequest,
    idempotency_key: str | None,
    registry: LayerRegistry,
    settings: Settings,
    policy: SessionPolicy,
    quota: QueueQuota,
    fingerprint: Callable[[], str] | None = None,
    directory: RunDirectory | None = None,
    on_insert: InsertHook | None = None,
) -> tuple[RunRead, bool]:
    """Validate and queue a run. Returns (run, created); created is False for a replay.

    Raises `ValidationFailed` (422) before anything is written, `Conflict`
    (`idempotency_key_reused`) when the key was used for a different request, `Conflict`
    (`session_busy`) when the request's session has a run in flight, and `TooManyRequests` when
    the tenant has too many queued runs. `fingerprint` computes the fingerprint instead of the
    request's own (a node run fingerprints what its caller sent, not the composition built from
    it); either is computed only when there is an idempotency key. `on_insert` runs in
    the insert transaction (see `InsertHook`), not for a replay.
    """
    key = idempotency_key or request.idempotency_key
    # only a key's replay compares fingerprints; hashing every request cost 2 % of a run
    if key is None:
        fingerprint_value = NO_FINGERPRINT
    elif fingerprint is None:
        fingerprint_value = request_fingerprint(request)
    else:
        fingerprint_value = fingerprint()
    if key is not None:
        existing = await db.read(repository.get_run_by_key, principal.tenant_id, key)
        if existing is not None:
            return _replay(existing, fingerprint_value), False
    resolved = ResolvedSnapshot(request.session_snapshot, None)
    if request.session is not None:
        try:
            resolved = await db.read(
                policy.resolve_snapshot,
                principal.tenant_id,
                request.session,
                request.session_snapshot,
            )
        except Conflict:
            # busy: perhaps with this very request, sent twice at once
            existing = (
                await db.read(repository.get_run_by_key, principal.tenant_id, key) if key else None
            )
            if existing is None:
                raise
            return _replay(existing, fingerprint_value), False
    prepared = prepare_run(
        request,
        tenant_id=principal.tenant_id,
        registry=registry,
        settings=settings,
        resolved=resolved,
        key=key,
        fingerprint=fingerprint_value,
    )
    prepared.on_insert = on_insert
    await quota.check(db, principal.tenant_id)
    run, created = await db.write(insert_run, prepared, policy=policy)
    if created:
        quota.added(principal.tenant_id)
        if directory is not None:
            directory.queued(run.id, principal.tenant_id)
    return run, created


async def insert_run(
    session: AsyncSession, prepared: PreparedRun, *, policy: SessionPolicy
) -> tuple[RunRead, bool]:
    """Insert a prepared run (in the caller's write transaction); (run, created).

    Occupying the session and inserting the run share one savepoint: a concurrent duplicate
    (same idempotency key) rolls back both, so no session points at a phantom run.
    """
    values = prepared.values
    tenant_id: uuid.UUID = values["tenant_id"]
    try:
        if prepared.key is not None or prepared.scope is not None:
            async with session.begin_nested():
                await _insert(session, prepared, policy)
        else:
            await _insert(session, prepared, policy)
    except (IntegrityError, Conflict):
        existing = (
            await repository.get_run_by_key(session, tenant_id, prepared.key)
            if prepared.key is not None
            else None
        )
        if existing is None:
            raise
        return _replay(existing, prepared.fingerprint), False
    notify(session, QUEUE_TOPIC)
    return run_read(values), True


async def _insert(session: AsyncSession, prepared: PreparedRun, policy: SessionPolicy) -> None:
    values = prepared.values
    if prepared.scope is not None:
        values["session_id"] = await policy.occupy(
            session,
            values["tenant_id"],
            prepared.scope,
            run_id=prepared.id,
            expected=prepared.resolved,
        )
    if prepared.on_insert is not None:
        await prepared.on_insert(session)
    await repository.insert_run(session, values)
    await repository.insert_events(
        session,
        prepared.id,
        values["tenant_id"],
        1,
        [("run_queued", {"attempt": 1, "purpose": values["purpose"].value})],
        values["created_at"],
    )


def _replay(existing: Any, fingerprint: str) -> RunRead:
    if existing.request_fingerprint != fingerprint:
        raise Conflict(
            "this idempotency key was already used for a different request",
            code="idempotency_key_reused",
            details={"run_id": str(existing.id)},
        )
    return run_read(existing)


async def get_run(session: AsyncSession, principal: Principal, run_id: uuid.UUID) -> RunRead:
    row = await repository.get_run(session, principal.tenant_id, run_id)
    if row is None:
        raise NotFound("run not found", code="run_not_found")
    return run_read(row)


async def ensure_run(session: AsyncSession, principal: Principal, run_id: uuid.UUID) -> None:
    """`NotFound` unless the tenant has this run."""
    if not await repository.run_exists(session, principal.tenant_id, run_id):
        raise NotFound("run not found", code="run_not_found")


async def cancel_run(
    session: AsyncSession,
    *,
    principal: Principal,
    run_id: uuid.UUID,
    reason: str | None,
    policy: SessionPolicy,
) -> RunRead:
    """Cancel a run (a write job). Queued: cancelled at once. Running: `cancelling` until its
    worker has exited every layer.

    Idempotent for runs already cancelling or cancelled; `Conflict` (`run_already_finished`)
    when the run succeeded, paused or failed.
    """
    row = await repository.lock_run(session, run_id, tenant_id=principal.tenant_id)
    if row is None:
        raise NotFound("run not found", code="run_not_found")
    status = RunStatus(row.status)
    now = utcnow()
    if status is RunStatus.QUEUED:
        outcome = RunOutcome(
            status=RunStatus.CANCELLED,
            error=reason or "the run was cancelled before it started",
            error_type=ErrorType.CANCELLED,
            reason="cancel_requested",
        )
        done = await commit_terminal(
            session,
            run_id=run_id,
            attempt=row.attempt,
            outcome=outcome,
            policy=policy,
            statuses=(RunStatus.QUEUED,),
            extra_values={"cancel_requested_at": now, "cancel_reason": reason},
        )
        return run_read(done if done is not None else row)
    if status is RunStatus.RUNNING:
        item = ("run_cancelling", {"reason": reason})
        changed = await repository.settle(
            session,
            run_id,
            statuses=(RunStatus.RUNNING,),
            values={
                "status": RunStatus.CANCELLING,
                "cancel_requested_at": now,
                "cancel_reason": reason,
            },
            event_count=1,
        )
        if changed is None:  # pragma: no cover - the row is locked; kept for safety
            return run_read(row)
        seq = int(changed["last_event_seq"])
        await repository.insert_events(session, run_id, changed["tenant_id"], seq, [item], now)
        hand_off(
            session,
            run_topic(run_id),
            RunUpdate(run_id, [EventRecord(seq, item[0], item[1], now)]),
        )
        hand_off(session, cancel_topic(run_id), reason or "")
        return run_read(changed)
    if status in (RunStatus.CANCELLING, RunStatus.CANCELLED):
        return run_read(row)
    raise Conflict(
        f"the run already {status.value}; it can no longer be cancelled",
        code="run_already_finished",
        details={"status": status.value},
    )


_DEADLINE_READ_MARGIN = 0.5
"""A waiter whose last read is out of date (events were handed over since, or it has not read
at all) reads this long before its deadline, so the read's wait for a pooled connection and
its round trip are spent before the deadline rather than after it."""
_LATE_READ_GRACE = 0.5
"""How long past the deadline a waiter's last read may take; past that, the waiter answers the
state it read before (when it has one). A long-poll so answers within about a second of its
deadline, however busy the pool is (issue 13.6: up to 8.7 s late at load)."""


async def wait_for_run(
    db: Database,
    notifier: Notifier,
    *,
    principal: Principal,
    run_id: uuid.UUID,
    timeout: float,
    directory: RunDirectory | None = None,
) -> RunRead:
    """The run as soon as it is terminal, or as it is at the deadline.

    Woken by notifications; no connection is held while waiting, and a read happens only
    when the waiter arrives, when another process notified a change, and — when events were
    handed over since its last read — shortly before the deadline. At the deadline a waiter
    whose last read is current answers it without reading again. Reads nothing at all when
    this process knows the run is terminal, or executes it (`RunDirectory`) and either ends it
    before the deadline or knows its row at the deadline. Answers within about a second of the
    deadline (`_LATE_READ_GRACE`).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with notifier.subscribe(run_topic(run_id)) as wake:
        if directory is not None:
            known = directory.terminal(run_id, principal.tenant_id)
            if known is not None:
                return run_read(known)
            if directory.executes(run_id, principal.tenant_id):
                handed = await _await_handed_terminal(
                    wake, deadline, lambda: directory.knows_row(run_id, principal.tenant_id)
                )
                if handed is not None:
                    return run_read(handed)
                running = directory.running(run_id, principal.tenant_id)
                # (a timer may fire a hair early: still the deadline, not news)
                if running is not None and loop.time() >= deadline - _DEADLINE_READ_MARGIN:
                    return running
        last: RunRead | None = None
        must_read = True  # `last` may be out of date: news came from another process
        stale = False  # events were handed over since `last` was read
        while True:
            if must_read or (stale and loop.time() >= deadline - _DEADLINE_READ_MARGIN):
                run = await _read_run_for_waiter(db, principal, run_id, deadline, last)
                if run is None:
                    continue  # the database is away; retried until the deadline
                if run is last:
                    return run  # past the deadline and the read did not come back in time
                last, must_read, stale = run, False, False
                if run.status.is_terminal:
                    return run
            if loop.time() >= deadline:
                if last is not None and not stale and not must_read:
                    return last
                must_read = True
                continue
            wake_at = deadline
            if stale and loop.time() < deadline - _DEADLINE_READ_MARGIN:
                wake_at = deadline - _DEADLINE_READ_MARGIN
            woke = await wake.wait(wake_at - loop.time())
            payloads, needs_read = wake.take_payloads()
            handed = _terminal_of(payloads)
            if handed is not None:
                return run_read(handed)
            if needs_read:
                must_read = True  # news from another process (or too much to keep): read
            elif woke:
                stale = True  # events this process appended while the run goes on


async def _read_run_for_waiter(
    db: Database,
    principal: Principal,
    run_id: uuid.UUID,
    deadline: float,
    last: RunRead | None,
) -> RunRead | None:
    """One read of the run for `wait_for_run`.

    Returns `last` itself when the deadline has passed and the read did not finish within
    `_LATE_READ_GRACE` of it (or the database is away then), None when the database is away
    before the deadline (after a short pause: the caller retries). Raises `NotFound` and
    unexpected errors, and the outage error at the deadline when there is no earlier state.
    """
    loop = asyncio.get_running_loop()
    bound = deadline + _LATE_READ_GRACE if last is not None else None
    try:
        async with asyncio.timeout_at(bound):
            return await db.read(get_run, principal, run_id)
    except TimeoutError:
        if last is not None and loop.time() >= deadline:
            return last
        raise
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        # the database is away: keep waiting (and retrying) until the deadline
        if loop.time() >= deadline:
            if last is not None:
                return last
            raise
        await asyncio.sleep(max(0.0, min(_OUTAGE_RETRY_SECONDS, deadline - loop.time())))
        return None


async def _await_handed_terminal(
    wake: Any, deadline: float, knows_row: Callable[[], bool]
) -> dict[str, Any] | None:
    """Wait for this process to hand over the run's terminal state; None when news comes from
    elsewhere (the caller then reads), or at the deadline when the directory `knows_row()`
    then, or a little before the deadline when it does not (the caller reads: that read has no
    earlier state to fall back on, so it starts early)."""
    loop = asyncio.get_running_loop()
    while True:
        until = deadline if knows_row() else deadline - 2 * _DEADLINE_READ_MARGIN
        woke = await wake.wait(until - loop.time())
        payloads, needs_read = wake.take_payloads()
        handed = _terminal_of(payloads)
        if handed is not None:
            return handed
        if not woke or needs_read:
            return None


def _terminal_of(payloads: list[Any]) -> dict[str, Any] | None:
    for payload in payloads:
        if isinstance(payload, RunUpdate) and payload.run is not None:
            return payload.run
    return None


async def list_events(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID, *, after: int, limit: int
) -> list[RunEventRead]:
    await ensure_run(session, principal, run_id)
    rows = await repository.list_events(session, run_id, after=after, limit=limit)
    return await _event_reads(session, run_id, rows)


async def _event_reads(
    session: AsyncSession, run_id: uuid.UUID, rows: Sequence[Any]
) -> list[RunEventRead]:
    """Events as the API shows them; the terminal event gets the run's resulting snapshot."""
    reads = [event_read(run_id, row.seq, row.type, row.data, row.created_at) for row in rows]
    if reads and reads[-1].type in TERMINAL_EVENT_TYPES:
        snapshots = await repository.snapshots_of(session, [run_id])
        reads[-1] = with_snapshot(reads[-1], snapshots.get(run_id))
    return reads


def event_read(
    run_id: uuid.UUID, seq: int, event_type: str, data: dict[str, Any], created_at: Any
) -> RunEventRead:
    return RunEventRead.model_construct(
        seq=seq, run_id=run_id, type=event_type, data=data, created_at=created_at
    )


def with_snapshot(event: RunEventRead, snapshot: dict[str, Any] | None) -> RunEventRead:
    """The terminal event as the API shows it: its data with the run's resulting snapshot."""
    data = dict(event.data)
    data["session_snapshot"] = snapshot
    return RunEventRead.model_construct(
        seq=event.seq, run_id=event.run_id, type=event.type, data=data, created_at=event.created_at
    )


def _handed_events(run_id: uuid.UUID, update: RunUpdate) -> list[RunEventRead]:
    reads = [
        event_read(run_id, item.seq, item.type, item.data, item.created_at)
        for item in update.events
    ]
    if reads and update.run is not None and reads[-1].type in TERMINAL_EVENT_TYPES:
        reads[-1] = with_snapshot(reads[-1], update.run["session_snapshot"])
    return reads


async def _read_events_after(
    db: Database, run_id: uuid.UUID, cursor: int
) -> tuple[RunStatus | None, list[RunEventRead]]:
    async with db.reading() as session:
        # the status is read first: a terminal event committed after this read is still found
        # by the events query below
        status = await repository.run_status(session, run_id)
        rows = await repository.list_events(session, run_id, after=cursor, limit=STREAM_PAGE)
        return status, await _event_reads(session, run_id, rows)


async def follow_events(
    db: Database,
    notifier: Notifier,
    run_id: uuid.UUID,
    *,
    after: int,
    idle_seconds: float,
) -> AsyncIterator[RunEventRead | None]:
    """Stored events after `after`, then live ones; ends after the terminal event.

    Yields None each time `idle_seconds` pass without an event (the caller sends a keep-alive,
    re-checks its key…). Subscribes before reading, so an event committed between a read and
    the wait still wakes it. Events handed over in this process are used as they are when they
    continue the stream without a gap; anything else is read from the database, a page of
    `STREAM_PAGE` at a time, the next page only when the consumer has taken the previous one.
    No connection is held between reads: while it waits, a stream holds only its subscription.
    """
    cursor = after
    need_read = True
    async with notifier.subscribe(run_topic(run_id)) as wake:
        while True:
            if need_read:
                try:
                    status, items = await _read_events_after(db, run_id, cursor)
                except Exception as error:
                    if not is_database_unavailable(error):
                        raise
                    yield None  # keep the stream alive through a database outage
                    await asyncio.sleep(_OUTAGE_RETRY_SECONDS)
                    continue
                for item in items:
                    cursor = item.seq
                    yield item
                    if item.type in TERMINAL_EVENT_TYPES:
                        return
                if not items and (status is None or status.is_terminal):
                    return  # resumed at or after the terminal event: nothing more will come
                if len(items) == STREAM_PAGE:
                    continue
            woke = await wake.wait(idle_seconds)
            if not woke:
                need_read = False
                yield None
                continue
            payloads, need_read = wake.take_payloads()
            if need_read:
                continue  # news from another process (or too much to keep): read
            handed: list[RunEventRead] = []
            for payload in payloads:
                if isinstance(payload, RunUpdate):
                    handed.extend(_handed_events(run_id, payload))
            for item in handed:
                if item.seq <= cursor:
                    continue
                if item.seq != cursor + 1:
                    need_read = True  # a gap: something was committed elsewhere
                    break
                cursor = item.seq
                yield item
                if item.type in TERMINAL_EVENT_TYPES:
                    return
