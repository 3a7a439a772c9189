"""The seed protocol's use cases, over `app.runs.service`.

Every function calls the same services as `/v1` (same tenancy, validation, queue, rows and
events) and translates with `app.compat.translate`; nothing here reads or writes a table itself.
A run created here is a run like any other: `/v1/runs/{id}` shows it, and the other way round.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from app.compat.schemas import (
    SeedCancelRunRequest,
    SeedCreateRunRequest,
    SeedEvent,
    SeedEventPage,
    SeedRunCancelled,
    SeedRunCreated,
    SeedRunStatus,
)
from app.compat.translate import (
    cancel_text,
    encode_cursor,
    is_terminal,
    run_created,
    run_status,
    seed_event,
    strata_request,
)
from app.config import Settings
from app.db import Database
from app.keys import Principal
from app.layers import LayerRegistry
from app.notifier import Notifier
from app.runs import service
from app.runs.policy import SessionPolicy
from app.runs.schemas import RunRead


async def create_run(
    db: Database,
    *,
    principal: Principal,
    request: SeedCreateRunRequest,
    registry: LayerRegistry,
    settings: Settings,
    policy: SessionPolicy,
    quota: service.QueueQuota,
    directory: service.RunDirectory | None = None,
) -> SeedRunCreated:
    """Validate and queue the run (`service.create_run`). A replay of the same
    `idempotency_key` and body answers the run it created; raises what `create_run` raises."""
    run, _created = await service.create_run(
        db,
        principal=principal,
        request=strata_request(request),
        idempotency_key=None,
        registry=registry,
        settings=settings,
        policy=policy,
        quota=quota,
        directory=directory,
    )
    return run_created(run)


async def get_status(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID
) -> SeedRunStatus:
    """The run's status resource; `NotFound` when the tenant has no such run."""
    return run_status(await service.get_run(session, principal, run_id))


async def cancel_run(
    session: AsyncSession,
    *,
    principal: Principal,
    run_id: uuid.UUID,
    request: SeedCancelRunRequest,
    policy: SessionPolicy,
) -> SeedRunCancelled:
    """Cancel a run (a write job, `service.cancel_run`): a queued run ends at once, a running
    one once its worker has exited every layer; either way the answer is `cancelled`.

    Idempotent for cancelled runs; `Conflict` when the run already succeeded, paused (the
    seed's `succeeded`) or failed; `NotFound` for an unknown run.
    """
    await service.cancel_run(
        session,
        principal=principal,
        run_id=run_id,
        reason=cancel_text(request.reason, request.message),
        policy=policy,
    )
    return SeedRunCancelled(run_id=str(run_id), status="cancelled")


async def events_page(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID, *, after: int, limit: int
) -> SeedEventPage:
    """Up to `limit` events after the seq `after`, in the protocol's form.

    Events the protocol has no counterpart for are skipped without taking a place in the page,
    and the cursor moves past them. `next_cursor` is null once nothing more will come: the page
    holds the terminal event, or the run had ended before `after`.
    """
    events: list[SeedEvent] = []
    cursor = after
    ended: RunRead | None = None
    while len(events) < limit:
        wanted = limit - len(events)
        batch = await service.list_events(session, principal, run_id, after=cursor, limit=wanted)
        if not batch and ended is None and not events:
            # Read the run before looking again: its terminal event commits with its status,
            # so an ended run shows every event to the second read.
            run = await service.get_run(session, principal, run_id)
            if not run.status.is_terminal:
                break
            ended = run
            batch = await service.list_events(
                session, principal, run_id, after=cursor, limit=wanted
            )
            if not batch:
                return SeedEventPage(run_id=str(run_id), events=[], next_cursor=None)
        for item in batch:
            cursor = item.seq
            terminal = is_terminal(item)
            if terminal and ended is None:
                ended = await service.get_run(session, principal, run_id)
            translated = seed_event(item, ended if terminal else None)
            if translated is not None:
                events.append(translated)
            if terminal:
                return SeedEventPage(run_id=str(run_id), events=events, next_cursor=None)
        if len(batch) < wanted:
            break
    return SeedEventPage(run_id=str(run_id), events=events, next_cursor=encode_cursor(cursor))


async def follow_events(
    db: Database,
    notifier: Notifier,
    principal: Principal,
    run_id: uuid.UUID,
    *,
    after: int,
    idle_seconds: float,
) -> AsyncIterator[SeedEvent | None]:
    """The run's events after the seq `after`, stored then live, in the protocol's form; ends
    after the terminal event. Yields None after each `idle_seconds` without an event. The caller
    checks first that the tenant has the run (`service.ensure_run`)."""
    async for item in service.follow_events(
        db, notifier, run_id, after=after, idle_seconds=idle_seconds
    ):
        if item is None:
            yield None
            continue
        run = await db.read(service.get_run, principal, run_id) if is_terminal(item) else None
        translated = seed_event(item, run)
        if translated is not None:
            yield translated
