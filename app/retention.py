"""Retention: delete terminal runs that finished long ago, with their events.

A run is deleted when all of these hold:

- it is terminal (`succeeded`, `paused`, `failed`, `cancelled`) and its `finished_at` is older
  than `STRATA_RETENTION_DAYS` (0 keeps every run: retention is off);
- it is not the latest snapshot of a session that may still resume
  (`workflow_agent_runtime_sessions.snapshot_run_id` of a session whose status is not `cleaned`);
- no queued or running run starts from its snapshot (`runs.snapshot_in_run_id` of a run that is
  not terminal).

Its events go with it: `run_events.run_id` cascades on delete (SQLite enforces it too: the
driver turns `foreign_keys` on for every connection). Ids other rows keep of a deleted run
(a cleaned session's `backend_run_id`, a later run's `snapshot_in_run_id`) are plain columns, not
foreign keys, and simply stop resolving.

**Batches.** A pass deletes at most `batch_size` runs per transaction — one
`DELETE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING` statement, one
`Database.write` job — commits, and repeats until a batch comes back short, so no transaction
holds its locks for long and other writes interleave between batches (on SQLite, the batch is one
job among the writer's others). The cutoff is fixed when the pass starts, so a pass ends.

**Several sweepers at once.** Every worker runs `retention_loop`, and `strata retention run` may
run beside them. On PostgreSQL `SKIP LOCKED` makes concurrent passes take disjoint batches and a
row another pass deleted is gone from the next select; on SQLite writers are serialized (one
writer task per process, `BEGIN IMMEDIATE` between processes). Either way each row is deleted
exactly once.

Events deleted are counted from the runs' `last_event_seq`: a run's events are numbered 1, 2, 3…
without gaps up to it (`app.models.run`), so the count needs no extra statement.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import structlog
from sqlalchemy import Table, and_, bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.metrics import Metrics
from app.models import Run, RunStatus, RuntimeSessionStatus, WorkflowAgentRuntimeSession
from app.models.base import utcnow
from app.models.run import TERMINAL_RUN_STATUSES

log = structlog.get_logger("strata.retention")

_runs = cast(Table, Run.__table__)
_sessions = cast(Table, WorkflowAgentRuntimeSession.__table__)
_successor = _runs.alias("successor")

_TERMINAL = sorted(TERMINAL_RUN_STATUSES)
_NOT_TERMINAL = sorted(set(RunStatus) - TERMINAL_RUN_STATUSES)

_BATCH = (
    select(_runs.c.id)
    .where(
        _runs.c.status.in_(_TERMINAL),
        _runs.c.finished_at < bindparam("cutoff"),
        # the latest snapshot of a session that may still resume
        ~exists().where(
            _sessions.c.snapshot_run_id == _runs.c.id,
            _sessions.c.status != RuntimeSessionStatus.CLEANED,
        ),
        # the snapshot a queued or running run starts from
        ~exists().where(
            and_(
                _successor.c.snapshot_in_run_id == _runs.c.id,
                _successor.c.status.in_(_NOT_TERMINAL),
            )
        ),
    )
    .order_by(_runs.c.finished_at)
    .limit(bindparam("limit"))
    .with_for_update(of=_runs, skip_locked=True)
)
_DELETE_BATCH = (
    delete(_runs).where(_runs.c.id.in_(_BATCH)).returning(_runs.c.id, _runs.c.last_event_seq)
)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one pass deleted."""

    runs_deleted: int = 0
    events_deleted: int = 0
    batches: int = 0
    cutoff: datetime | None = None


async def delete_batch(session: AsyncSession, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Delete up to `limit` deletable runs that finished before `cutoff`, oldest first, and
    their events. Returns (runs, events) deleted. A `Database.write` job."""
    result = await session.execute(_DELETE_BATCH, {"cutoff": cutoff, "limit": limit})
    rows = result.all()
    return len(rows), sum(int(row.last_event_seq) for row in rows)


def retention_cutoff(days: float, now: datetime | None = None) -> datetime:
    """Runs that finished before this instant are old enough to go."""
    return (now or utcnow()) - timedelta(days=days)


async def run_retention(
    db: Database,
    *,
    days: float,
    batch_size: int,
    metrics: Metrics | None = None,
    now: datetime | None = None,
) -> RetentionResult:
    """One retention pass: delete batch after batch until none is full. `days <= 0` deletes
    nothing (retention is off). Each batch commits on its own; a failure stops the pass with
    the batches before it committed (and counted in `metrics`)."""
    if days <= 0:
        return RetentionResult()
    cutoff = retention_cutoff(days, now)
    runs_deleted = events_deleted = batches = 0
    while True:
        runs, events = await db.write(delete_batch, cutoff, batch_size)
        batches += 1
        runs_deleted += runs
        events_deleted += events
        if metrics is not None and runs:
            metrics.retention_runs_deleted.inc(runs)
            metrics.retention_events_deleted.inc(events)
        if runs < batch_size:
            break
        await asyncio.sleep(0)  # let this process's other work in between batches
    return RetentionResult(runs_deleted, events_deleted, batches, cutoff)


async def retention_loop(db: Database, settings: Settings, metrics: Metrics) -> None:
    """A worker's loop: a pass at once, then one every `retention_interval_seconds`, for ever.
    A failed pass is logged and tried again at the next interval. Returns at once when
    retention is off (`retention_days` 0)."""
    if settings.retention_days <= 0:
        return
    while True:
        try:
            result = await run_retention(
                db,
                days=settings.retention_days,
                batch_size=settings.retention_batch_size,
                metrics=metrics,
            )
        except Exception as exc:
            log.warning("retention_failed", error_class=type(exc).__name__)
        else:
            if result.runs_deleted:
                log.info(
                    "retention_pass",
                    runs_deleted=result.runs_deleted,
                    events_deleted=result.events_deleted,
                    batches=result.batches,
                )
        await asyncio.sleep(settings.retention_interval_seconds)
