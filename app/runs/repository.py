"""SQL for runs and their events. No commits here: callers own the transaction.

Fencing. A worker's writes to a run it executes carry a `Fence` (run id, attempt, lease owner) and
only touch the row while all three still match and the run is not terminal. A worker whose lease
lapsed (and whose run was failed or handed to a new attempt by the sweeper) therefore cannot write
anything: its updates match no row.

Event sequence numbers come from `runs.last_event_seq`, incremented by the same UPDATE that checks
the run is not terminal. Appending is thus serialized per run, gap-free, and impossible once the
terminal event (written in the same transaction as the terminal status) exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Run, RunEvent, RunStatus
from app.models.base import utcnow
from app.models.run import TERMINAL_RUN_STATUSES as TERMINAL

EXECUTING = (RunStatus.RUNNING, RunStatus.CANCELLING)


@dataclass(frozen=True)
class Fence:
    """Identifies one attempt of one run held by one worker."""

    run_id: uuid.UUID
    attempt: int
    owner: str

    def clause(self) -> Any:
        return and_(
            Run.id == self.run_id,
            Run.attempt == self.attempt,
            Run.lease_owner == self.owner,
            Run.status.in_(EXECUTING),
        )


async def get_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run | None:
    return await session.scalar(select(Run).where(Run.id == run_id, Run.tenant_id == tenant_id))


async def get_run_by_key(
    session: AsyncSession, tenant_id: uuid.UUID, idempotency_key: str
) -> Run | None:
    return await session.scalar(
        select(Run).where(Run.tenant_id == tenant_id, Run.idempotency_key == idempotency_key)
    )


async def list_runs(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    statuses: Sequence[RunStatus],
    before: uuid.UUID | None,
    limit: int,
) -> list[Run]:
    """Newest first. Ids are UUIDv7, so ordering by id is ordering by creation time."""
    query = select(Run).where(Run.tenant_id == tenant_id)
    if statuses:
        query = query.where(Run.status.in_(statuses))
    if before is not None:
        query = query.where(Run.id < before)
    return list(await session.scalars(query.order_by(Run.id.desc()).limit(limit)))


async def count_queued(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Run)
        .where(Run.tenant_id == tenant_id, Run.status == RunStatus.QUEUED)
    )
    return int(count or 0)


async def append_event(
    session: AsyncSession,
    run_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
    *,
    fence: Fence | None = None,
) -> int | None:
    """Append one event; its seq, or None when the run is terminal (or the fence is stale)."""
    condition = (
        fence.clause() if fence is not None else and_(Run.id == run_id, Run.status.not_in(TERMINAL))
    )
    now = utcnow()
    row = (
        await session.execute(
            update(Run)
            .where(condition)
            .values(last_event_seq=Run.last_event_seq + 1, updated_at=now)
            .returning(Run.last_event_seq, Run.tenant_id)
        )
    ).first()
    if row is None:
        return None
    seq, tenant_id = row
    session.add(
        RunEvent(
            run_id=run_id, seq=seq, tenant_id=tenant_id, type=event_type, data=data, created_at=now
        )
    )
    await session.flush()
    return int(seq)


async def list_events(
    session: AsyncSession, run_id: uuid.UUID, *, after: int, limit: int
) -> list[RunEvent]:
    return list(
        await session.scalars(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, RunEvent.seq > after)
            .order_by(RunEvent.seq)
            .limit(limit)
        )
    )


async def claim_queued(
    session: AsyncSession, *, owner: str, limit: int, lease_seconds: float
) -> list[Run]:
    """Move up to `limit` queued runs to `running` under this worker's lease, oldest first.

    PostgreSQL: `FOR UPDATE SKIP LOCKED` lets concurrent claimers pass each other's rows.
    SQLite: the clause renders as nothing; the transaction began with BEGIN IMMEDIATE, so
    claimers are serialized and each sees the others' claims.
    """
    ids = list(
        await session.scalars(
            select(Run.id)
            .where(Run.status == RunStatus.QUEUED)
            .order_by(Run.queued_at, Run.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    now = utcnow()
    await session.execute(
        update(Run)
        .where(Run.id.in_(ids), Run.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            started_at=now,
            updated_at=now,
        )
    )
    return list(
        await session.scalars(
            select(Run)
            .where(Run.id.in_(ids), Run.lease_owner == owner)
            .order_by(Run.queued_at, Run.id)
            .execution_options(populate_existing=True)
        )
    )


async def renew_lease(
    session: AsyncSession, fence: Fence, *, lease_seconds: float
) -> RunStatus | None:
    """Extend the lease; the run's status (RUNNING or CANCELLING), or None if the fence is stale."""
    now = utcnow()
    row = (
        await session.execute(
            update(Run)
            .where(fence.clause())
            .values(
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                heartbeat_at=now,
            )
            .returning(Run.status)
        )
    ).first()
    return None if row is None else RunStatus(row[0])


async def lock_for_finish(session: AsyncSession, fence: Fence) -> Run | None:
    """The run row if this worker may still finish it (locked FOR UPDATE on PostgreSQL)."""
    return await session.scalar(
        select(Run)
        .where(fence.clause())
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def expired_leases(session: AsyncSession, *, now: datetime, limit: int) -> list[Run]:
    return list(
        await session.scalars(
            select(Run)
            .where(Run.status.in_(EXECUTING), Run.lease_expires_at < now)
            .order_by(Run.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )


async def lock_run(session: AsyncSession, run_id: uuid.UUID, *, tenant_id: uuid.UUID) -> Run | None:
    """The tenant's run, (re-)read with a row lock (PostgreSQL) for a state change."""
    return await session.scalar(
        select(Run)
        .where(Run.id == run_id, Run.tenant_id == tenant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
