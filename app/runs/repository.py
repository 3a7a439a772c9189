"""SQL for runs and their events, in SQLAlchemy Core. No commits here: callers own the transaction.

The hot path is a small, fixed number of statements per run, each compiled once and cached:

- create: `INSERT runs` (with `last_event_seq = 1`) and `INSERT run_events` (`run_queued`);
- claim: one `UPDATE … RETURNING …` of the oldest queued runs for a whole batch (at most n,
  picked by a `SELECT … LIMIT n`, `FOR UPDATE SKIP LOCKED` on PostgreSQL), one multi-row
  `INSERT run_events` (`run_started` of each), and, only for runs that continue a session, one
  `SELECT` of their incoming snapshots;
- finish: one `UPDATE … RETURNING` (terminal columns, the fence, the event seqs) and one
  `INSERT run_events` (buffered text and the terminal event).

Reads select the columns their caller returns, never the request columns (`composition`,
`inputs`, incoming snapshots) unless executing the run.

Fencing. A worker's writes to a run it executes carry a `Fence` (run id, attempt, lease owner) and
only touch the row while all three still match and the run is executing. A worker that was
declared lost (its run failed or handed to a new attempt by a sweeper) therefore cannot write
anything: its updates match no row.

Event sequence numbers come from `runs.last_event_seq`, advanced by the same UPDATE that checks the
run is not terminal, by as many events as are appended. Appending is thus serialized per run,
gap-free, and impossible once the terminal event (written with the terminal status) exists.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import direct_sql
from app.models import Run, RunEvent, RunPurpose, RunStatus, Worker, WorkflowAgentRuntimeSession
from app.models.base import utcnow
from app.models.run import TERMINAL_RUN_STATUSES as TERMINAL
from app.runs.snapshots import reopen_closed

EXECUTING = (RunStatus.RUNNING, RunStatus.CANCELLING)
runs = cast(Table, Run.__table__)
events = cast(Table, RunEvent.__table__)
workers = cast(Table, Worker.__table__)
sessions = cast(Table, WorkflowAgentRuntimeSession.__table__)

#: What `RunRead` shows: everything but the request columns and the bookkeeping.
READ_COLUMNS = (
    runs.c.id,
    runs.c.status,
    runs.c.purpose,
    runs.c.attempt,
    runs.c.max_attempts,
    runs.c.session_id,
    runs.c.idempotency_key,
    runs.c.metadata,
    runs.c.created_at,
    runs.c.queued_at,
    runs.c.started_at,
    runs.c.finished_at,
    runs.c.updated_at,
    runs.c.cancel_requested_at,
    runs.c.cancel_reason,
    runs.c.output,
    runs.c.deferred_tool_calls,
    runs.c.session_snapshot,
    runs.c.usage,
    runs.c.error,
    runs.c.error_type,
    runs.c.reason,
)


#: `READ_COLUMNS` but what a state change writes itself (the outcome columns): a state change
#: returns these and merges in the values it wrote, so nothing it just wrote is read back.
_OUTCOME_COLUMNS = frozenset(
    {"output", "deferred_tool_calls", "session_snapshot", "usage", "error", "error_type", "reason"}
)
STATE_COLUMNS = tuple(column for column in READ_COLUMNS if column.name not in _OUTCOME_COLUMNS)


def _changed(row: Mapping[Any, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A state change's result: the run as `READ_COLUMNS` (plus `tenant_id` and
    `last_event_seq`), from the returned state columns and the values written."""
    merged = dict.fromkeys(_OUTCOME_COLUMNS)
    merged.update(row)
    merged.update(values)
    return merged


@dataclass(frozen=True, slots=True)
class Fence:
    """Identifies one attempt of one run held by one worker."""

    run_id: uuid.UUID
    attempt: int
    owner: str

    def clause(self, status: RunStatus | None = None) -> Any:
        return and_(
            runs.c.id == self.run_id,
            runs.c.attempt == self.attempt,
            runs.c.lease_owner == self.owner,
            runs.c.status.in_(EXECUTING) if status is None else runs.c.status == status,
        )


@dataclass(slots=True)
class ClaimedRun:
    """A run this worker just claimed: what executing it needs, and what the API shows of it
    while it runs (`RunDirectory.running`): the columns of `READ_COLUMNS` that a claim does not
    reset, `updated_at` as this process last wrote it, and `row_known`, False once anything
    this process did not write (or did not follow) may have changed the row."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    attempt: int
    purpose: RunPurpose
    composition: dict[str, Any]
    inputs: dict[str, Any]
    session_snapshot_in: dict[str, Any] | None
    snapshot_in_run_id: uuid.UUID | None
    session_id: uuid.UUID | None
    metadata: dict[str, Any]
    started_seq: int
    max_attempts: int
    idempotency_key: str | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime
    updated_at: datetime
    row_known: bool = True


# Statements are built once, with bound parameters, so SQLAlchemy's compiled-statement cache
# finds them without rebuilding them and their cache keys (~50 µs a statement otherwise).

_GET_RUN = select(*READ_COLUMNS).where(
    runs.c.id == bindparam("run_id"), runs.c.tenant_id == bindparam("tenant_id")
)
_RUN_EXISTS = select(runs.c.status).where(
    runs.c.id == bindparam("run_id"), runs.c.tenant_id == bindparam("tenant_id")
)
_GET_BY_KEY = select(*READ_COLUMNS, runs.c.request_fingerprint).where(
    runs.c.tenant_id == bindparam("tenant_id"), runs.c.idempotency_key == bindparam("key")
)
_COUNT_QUEUED = (
    select(func.count())
    .select_from(runs)
    .where(runs.c.tenant_id == bindparam("tenant_id"), runs.c.status == RunStatus.QUEUED)
)
_RUN_STATUS = select(runs.c.status).where(runs.c.id == bindparam("run_id"))
_SNAPSHOTS = select(runs.c.id, runs.c.session_snapshot).where(
    runs.c.id.in_(bindparam("run_ids", expanding=True))
)
_LIST_EVENTS = (
    select(events.c.seq, events.c.run_id, events.c.type, events.c.data, events.c.created_at)
    .where(events.c.run_id == bindparam("run_id"), events.c.seq > bindparam("after"))
    .order_by(events.c.seq)
    .limit(bindparam("limit"))
)
_INSERT_RUN = insert(runs)
_INSERT_EVENTS = insert(events)
_NOT_TERMINAL = runs.c.status.not_in(TERMINAL)


# --- reads --------------------------------------------------------------------------------------


async def get_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Any | None:
    """The run's `READ_COLUMNS` row, or None (also for another tenant's run)."""
    result = await session.execute(_GET_RUN, {"run_id": run_id, "tenant_id": tenant_id})
    return result.first()


async def run_exists(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    result = await session.execute(_RUN_EXISTS, {"run_id": run_id, "tenant_id": tenant_id})
    return result.first() is not None


async def get_run_by_key(
    session: AsyncSession, tenant_id: uuid.UUID, idempotency_key: str
) -> Any | None:
    """The run created with this key (`READ_COLUMNS` and `request_fingerprint`), or None."""
    result = await session.execute(_GET_BY_KEY, {"tenant_id": tenant_id, "key": idempotency_key})
    return result.first()


@dataclass(frozen=True)
class RunFilters:
    """What `GET /v1/runs` narrows the list to; every given filter must hold (AND).

    `workflow_run_id` and `node_id` are the scope of the run's runtime session: runs without a
    session (plain `POST /v1/runs` without `session`) have neither and never match them.
    `created_after` is inclusive and `created_before` exclusive, so consecutive windows tile.
    """

    statuses: Sequence[RunStatus] = ()
    purpose: RunPurpose | None = None
    session_id: uuid.UUID | None = None
    workflow_run_id: str | None = None
    node_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


async def list_runs(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    filters: RunFilters,
    before: uuid.UUID | None,
    limit: int,
) -> list[Any]:
    """Newest first. Ids are UUIDv7, so ordering by id is ordering by creation time, and the
    cursor (`before`, the last id of the previous page) stays valid under the same filters.

    Indexes: `status` uses `(tenant_id, status, created_at)`; `session_id` uses
    `ix_runs_session_id`; `workflow_run_id` and `node_id` select the sessions first (through
    `(tenant_id, workflow_run_id, status)` or `(tenant_id, node_id)` of the sessions table) and
    then their runs through `ix_runs_session_id`; the created range alone uses
    `(tenant_id, created_at)`.
    """
    query = select(*READ_COLUMNS).where(runs.c.tenant_id == tenant_id)
    if filters.statuses:
        query = query.where(runs.c.status.in_(filters.statuses))
    if filters.purpose is not None:
        query = query.where(runs.c.purpose == filters.purpose)
    if filters.session_id is not None:
        query = query.where(runs.c.session_id == filters.session_id)
    if filters.workflow_run_id is not None or filters.node_id is not None:
        scoped = select(sessions.c.id).where(sessions.c.tenant_id == tenant_id)
        if filters.workflow_run_id is not None:
            scoped = scoped.where(sessions.c.workflow_run_id == filters.workflow_run_id)
        if filters.node_id is not None:
            scoped = scoped.where(sessions.c.node_id == filters.node_id)
        query = query.where(runs.c.session_id.in_(scoped))
    if filters.created_after is not None:
        query = query.where(runs.c.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(runs.c.created_at < filters.created_before)
    if before is not None:
        query = query.where(runs.c.id < before)
    return list((await session.execute(query.order_by(runs.c.id.desc()).limit(limit))).all())


async def count_queued(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    count = await session.scalar(_COUNT_QUEUED, {"tenant_id": tenant_id})
    return int(count or 0)


async def run_status(session: AsyncSession, run_id: uuid.UUID) -> RunStatus | None:
    status = await session.scalar(_RUN_STATUS, {"run_id": run_id})
    return None if status is None else RunStatus(status)


async def snapshots_of(
    session: AsyncSession, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any] | None]:
    """The resulting snapshot of each run (runs that do not exist are left out)."""
    if not run_ids:
        return {}
    result = await session.execute(_SNAPSHOTS, {"run_ids": list(run_ids)})
    return {row.id: row.session_snapshot for row in result}


async def list_events(
    session: AsyncSession, run_id: uuid.UUID, *, after: int, limit: int
) -> list[Any]:
    result = await session.execute(_LIST_EVENTS, {"run_id": run_id, "after": after, "limit": limit})
    return list(result.all())


# --- writes -------------------------------------------------------------------------------------


async def insert_run(session: AsyncSession, values: dict[str, Any]) -> None:
    await direct_sql.execute(session, _INSERT_RUN, values)


async def insert_events(
    session: AsyncSession,
    run_id: uuid.UUID,
    tenant_id: uuid.UUID,
    first_seq: int,
    items: Sequence[tuple[str, dict[str, Any]]],
    now: datetime,
) -> None:
    await direct_sql.execute(
        session,
        _INSERT_EVENTS,
        [
            {
                "run_id": run_id,
                "seq": first_seq + offset,
                "tenant_id": tenant_id,
                "type": event_type,
                "data": data,
                "created_at": now,
            }
            for offset, (event_type, data) in enumerate(items)
        ],
    )


_FENCE = and_(
    runs.c.id == bindparam("f_id"),
    runs.c.attempt == bindparam("f_attempt"),
    runs.c.lease_owner == bindparam("f_owner"),
)
_ADVANCE = {
    "last_event_seq": runs.c.last_event_seq + bindparam("b_count"),
    "updated_at": bindparam("b_now"),
}
_APPEND_FENCED = (
    update(runs)
    .where(_FENCE, runs.c.status.in_(EXECUTING))
    .values(_ADVANCE)
    .returning(runs.c.last_event_seq, runs.c.tenant_id)
)
_APPEND = (
    update(runs)
    .where(runs.c.id == bindparam("f_id"), _NOT_TERMINAL)
    .values(_ADVANCE)
    .returning(runs.c.last_event_seq, runs.c.tenant_id)
)


def _fence_params(fence: Fence) -> dict[str, Any]:
    return {"f_id": fence.run_id, "f_attempt": fence.attempt, "f_owner": fence.owner}


async def append_events(
    session: AsyncSession,
    run_id: uuid.UUID,
    items: Sequence[tuple[str, dict[str, Any]]],
    *,
    fence: Fence | None = None,
    now: datetime | None = None,
) -> int | None:
    """Append events in order (stamped `now`); the first one's seq, or None when the run is
    terminal (or the fence is stale), in which case nothing is written."""
    now = now or utcnow()
    params = {"b_count": len(items), "b_now": now}
    if fence is not None:
        params.update(_fence_params(fence))
        result = await session.execute(_APPEND_FENCED, params)
    else:
        params["f_id"] = run_id
        result = await session.execute(_APPEND, params)
    row = result.first()
    if row is None:
        return None
    first = int(row.last_event_seq) - len(items) + 1
    await insert_events(session, run_id, row.tenant_id, first, items, now)
    return first


_OLDEST_QUEUED = (
    select(runs.c.id)
    .where(runs.c.status == RunStatus.QUEUED)
    .order_by(runs.c.queued_at, runs.c.id)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM_VALUES: dict[str, Any] = {
    "status": RunStatus.RUNNING,
    "lease_owner": bindparam("b_owner"),
    "started_at": bindparam("b_now"),
    "updated_at": bindparam("b_now"),
    "last_event_seq": runs.c.last_event_seq + 1,
}
_CLAIM_RETURNING = (
    runs.c.id,
    runs.c.tenant_id,
    runs.c.attempt,
    runs.c.purpose,
    runs.c.composition,
    runs.c.inputs,
    runs.c.session_snapshot_in,
    runs.c.snapshot_in_run_id,
    runs.c.session_id,
    runs.c.metadata,
    runs.c.last_event_seq,
    runs.c.queued_at,
    runs.c.max_attempts,
    runs.c.idempotency_key,
    runs.c.created_at,
)
# SQLite runs an uncorrelated `IN (SELECT …)` once. PostgreSQL may plan it as a nested-loop
# semi-join that runs the subquery again for every queued row it scans, each run locking and
# returning the next row: `LIMIT 1` then claimed every queued run (measured: 5 of 5). The
# batch is therefore picked once, in a MATERIALIZED CTE, and joined.
_PICKED = _OLDEST_QUEUED.cte("picked").prefix_with("MATERIALIZED")
_CLAIM = {
    "sqlite": update(runs)
    .where(runs.c.id.in_(_OLDEST_QUEUED), runs.c.status == RunStatus.QUEUED)
    .values(_CLAIM_VALUES)
    .returning(*_CLAIM_RETURNING),
    "postgresql": update(runs)
    .where(runs.c.id == _PICKED.c.id, runs.c.status == RunStatus.QUEUED)
    .values(_CLAIM_VALUES)
    .returning(*_CLAIM_RETURNING),
}


async def claim_queued(
    session: AsyncSession, *, owner: str, limit: int, now: datetime
) -> list[ClaimedRun]:
    """Move up to `limit` queued runs to `running` under `owner`, oldest first, and write their
    `run_started` events. Resolves the incoming snapshots of runs that continue a session.

    PostgreSQL: `FOR UPDATE SKIP LOCKED` lets concurrent claimers pass each other's rows (the
    batch picked once, see `_PICKED`).
    SQLite: the clause renders as nothing; the one writer per process and `BEGIN IMMEDIATE`
    between processes serialize claimers.
    """
    statement = _CLAIM[session.get_bind().dialect.name]
    found = await direct_sql.execute(
        session, statement, {"b_limit": limit, "b_owner": owner, "b_now": now}
    )
    rows = sorted(found, key=lambda row: (row["queued_at"], row["id"]))
    if not rows:
        return []
    await direct_sql.execute(
        session,
        _INSERT_EVENTS,
        [
            {
                "run_id": row["id"],
                "seq": row["last_event_seq"],
                "tenant_id": row["tenant_id"],
                "type": "run_started",
                "data": {"attempt": row["attempt"], "worker": owner},
                "created_at": now,
            }
            for row in rows
        ],
    )
    sources = await snapshots_of(
        session,
        [row["snapshot_in_run_id"] for row in rows if row["snapshot_in_run_id"] is not None],
    )
    return [
        ClaimedRun(
            id=row["id"],
            tenant_id=row["tenant_id"],
            attempt=row["attempt"],
            purpose=RunPurpose(row["purpose"]),
            composition=row["composition"],
            inputs=row["inputs"],
            # a session's snapshot, with the layers its last run closed starting fresh
            session_snapshot_in=(
                reopen_closed(sources.get(row["snapshot_in_run_id"]))
                if row["snapshot_in_run_id"] is not None
                else row["session_snapshot_in"]
            ),
            snapshot_in_run_id=row["snapshot_in_run_id"],
            session_id=row["session_id"],
            metadata=row["metadata"],
            started_seq=int(row["last_event_seq"]),
            max_attempts=row["max_attempts"],
            idempotency_key=row["idempotency_key"],
            created_at=row["created_at"],
            queued_at=row["queued_at"],
            started_at=now,
            updated_at=now,
        )
        for row in rows
    ]


@functools.lru_cache(maxsize=64)
def _change_statement(
    columns: tuple[str, ...], *, one_status: bool, fenced: bool, by_attempt: bool, clear_owner: bool
) -> Any:
    """UPDATE of `columns` (bound as `v_<name>`) guarded by a status list, a fence or an
    attempt, advancing `last_event_seq`; returns the state columns. Built once per shape.

    With `one_status`, the guard is `status = :status`, not an `IN` list: an expanding
    parameter is rendered into the SQL text again on every execution, and `finish` (the end of
    every run) always expects one status."""
    condition: Any = (
        runs.c.status == bindparam("statuses")
        if one_status
        else runs.c.status.in_(bindparam("statuses", expanding=True))
    )
    if fenced:
        condition = and_(_FENCE, condition)
    else:
        condition = and_(runs.c.id == bindparam("f_id"), condition)
        if by_attempt:
            condition = and_(condition, runs.c.attempt == bindparam("f_attempt"))
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
    values.update(_ADVANCE)
    if clear_owner:
        values["lease_owner"] = None
    return (
        update(runs)
        .where(condition)
        .values(values)
        .returning(*STATE_COLUMNS, runs.c.tenant_id, runs.c.last_event_seq)
    )


def _change_params(
    values: dict[str, Any], statuses: Sequence[RunStatus], event_count: int, now: datetime
) -> dict[str, Any]:
    params = {f"v_{name}": value for name, value in values.items()}
    params.update(
        statuses=statuses[0] if len(statuses) == 1 else list(statuses),
        b_count=event_count,
        b_now=now,
    )
    return params


async def finish(
    session: AsyncSession,
    fence: Fence,
    *,
    expected: RunStatus,
    values: dict[str, Any],
    event_count: int,
) -> dict[str, Any] | None:
    """Commit a terminal state if the fence holds and the run is `expected` (running or
    cancelling). The run (`READ_COLUMNS`, `tenant_id`, `last_event_seq`) or None."""
    statement = _change_statement(
        tuple(sorted(values)), one_status=True, fenced=True, by_attempt=False, clear_owner=True
    )
    params = _change_params(values, (expected,), event_count, values["finished_at"])
    params.update(_fence_params(fence))
    rows = await direct_sql.execute(session, statement, params)
    return _changed(rows[0], values) if rows else None


async def settle(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    statuses: Sequence[RunStatus],
    values: dict[str, Any],
    event_count: int,
    attempt: int | None = None,
) -> dict[str, Any] | None:
    """Change a run's state without a fence (the API cancelling, a sweeper, which hold the
    row's lock), or fenced on `attempt` only. The run (`READ_COLUMNS`, `tenant_id`,
    `last_event_seq`, as a dict), or None when the run is no longer in `statuses` (or that
    attempt)."""
    statement = _change_statement(
        tuple(sorted(values)),
        one_status=len(statuses) == 1,
        fenced=False,
        by_attempt=attempt is not None,
        clear_owner=False,
    )
    params = _change_params(values, statuses, event_count, values.get("finished_at") or utcnow())
    params["f_id"] = run_id
    if attempt is not None:
        params["f_attempt"] = attempt
    row = (await session.execute(statement, params)).first()
    return None if row is None else _changed(row._mapping, values)


async def lock_run(session: AsyncSession, run_id: uuid.UUID, *, tenant_id: uuid.UUID) -> Any | None:
    """The tenant's run (`READ_COLUMNS`), locked (PostgreSQL) for a state change."""
    result = await session.execute(
        _GET_RUN.with_for_update(), {"run_id": run_id, "tenant_id": tenant_id}
    )
    return result.first()


async def cancel_state(session: AsyncSession, run_id: uuid.UUID) -> Any | None:
    """(status, attempt, lease_owner, cancel_reason) of a run, for a worker checking a cancel."""
    result = await session.execute(
        select(runs.c.status, runs.c.attempt, runs.c.lease_owner, runs.c.cancel_reason).where(
            runs.c.id == run_id
        )
    )
    return result.first()


async def holds_lease(session: AsyncSession, fence: Fence) -> bool:
    result = await session.execute(select(runs.c.id).where(fence.clause()))
    return result.first() is not None


# --- workers ------------------------------------------------------------------------------------


async def register_worker(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(workers), values)


async def heartbeat(session: AsyncSession, owner: str, *, now: datetime, in_flight: int) -> bool:
    """Renew the worker's heartbeat; False when its row is gone (a sweeper deleted it)."""
    result = await session.execute(
        update(workers).where(workers.c.id == owner).values(heartbeat_at=now, in_flight=in_flight)
    )
    return bool(getattr(result, "rowcount", 0))


async def executing_runs_of(session: AsyncSession, owner: str) -> list[Any]:
    """(id, attempt, status, cancel_reason) of the runs `owner` executes, as the database sees
    it: a run missing here is no longer this worker's (a sweeper settled it)."""
    result = await session.execute(
        select(runs.c.id, runs.c.attempt, runs.c.status, runs.c.cancel_reason).where(
            runs.c.lease_owner == owner, runs.c.status.in_(EXECUTING)
        )
    )
    return list(result.all())


async def remove_worker(session: AsyncSession, owner: str) -> None:
    await session.execute(workers.delete().where(workers.c.id == owner))


_OWNERS = (
    select(runs.c.lease_owner)
    .where(runs.c.lease_owner.is_not(None), runs.c.lease_owner != bindparam("me"))
    .distinct()
)
_LIVE_WORKERS = select(workers.c.id).where(workers.c.heartbeat_at >= bindparam("stale_before"))


async def lost_runs(
    session: AsyncSession, *, me: str, stale_before: datetime, limit: int
) -> list[Any]:
    """Executing runs whose worker is not `me` and has a stale heartbeat or no row, locked
    (PostgreSQL, skipping rows another sweeper holds).

    Two cheap steps for the common case where every worker is alive: the distinct owners of
    executing runs (from the partial index on `lease_owner`) against the live workers; the runs
    themselves are read only for owners that are gone.
    """
    owners = set((await session.execute(_OWNERS, {"me": me})).scalars())
    if not owners:
        return []
    live = set((await session.execute(_LIVE_WORKERS, {"stale_before": stale_before})).scalars())
    gone = sorted(owners - live)
    if not gone:
        return []
    result = await session.execute(
        select(
            runs.c.id,
            runs.c.tenant_id,
            runs.c.status,
            runs.c.attempt,
            runs.c.max_attempts,
            runs.c.lease_owner,
            runs.c.cancel_reason,
            runs.c.session_id,
            runs.c.inputs,
        )
        .where(runs.c.lease_owner.in_(gone), runs.c.status.in_(EXECUTING))
        .order_by(runs.c.queued_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(result.all())


async def remove_dead_workers(session: AsyncSession, *, dead_before: datetime) -> int:
    """Delete worker rows silent since `dead_before` that no executing run names any more."""
    executing = select(runs.c.id).where(
        runs.c.lease_owner == workers.c.id, runs.c.status.in_(EXECUTING)
    )
    result = await session.execute(
        workers.delete().where(workers.c.heartbeat_at < dead_before, ~executing.exists())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def list_workers(session: AsyncSession) -> list[Any]:
    """Every worker row with the number of runs it executes now (from the runs table)."""
    counts = (
        select(runs.c.lease_owner, func.count().label("executing"))
        .where(runs.c.status.in_(EXECUTING))
        .group_by(runs.c.lease_owner)
        .subquery()
    )
    result = await session.execute(
        select(workers, func.coalesce(counts.c.executing, literal_column("0")).label("executing"))
        .select_from(workers.outerjoin(counts, counts.c.lease_owner == workers.c.id))
        .order_by(workers.c.started_at)
    )
    return list(result.all())
