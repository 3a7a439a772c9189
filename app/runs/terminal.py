"""The one place a run becomes terminal, and what other processes and packages hear about it.

`commit_terminal` writes, in the caller's transaction: the terminal columns (by a fenced or
status-checked UPDATE that also advances `last_event_seq`), the events that go with it (buffered
text first, the terminal event last), the run's runtime session through the `SessionPolicy`, and
the hand-off for this process's waiters and event streams. Exactly one terminal transition
happens: the UPDATE matches no row once the run is terminal (or the fence is stale).

Runtime sessions are reached through `app.runs.policy.SessionPolicy`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import RunStatus
from app.models.base import utcnow
from app.notifier import hand_off, run_topic
from app.runs import repository
from app.runs.outcome import TERMINAL_EVENT, RunOutcome
from app.runs.policy import SessionPolicy, TerminalRun
from app.runs.repository import Fence


@dataclass(slots=True)
class EventRecord:
    """One appended event, as handed to this process's event streams."""

    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime


@dataclass(slots=True)
class RunUpdate:
    """Hand-off payload of topic `run:<id>`: events just committed, in order, and the run
    (`READ_COLUMNS` as a dict) when it reached a terminal state."""

    run_id: uuid.UUID
    events: list[EventRecord] = field(default_factory=list)
    run: dict[str, Any] | None = None


async def commit_terminal(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    attempt: int,
    outcome: RunOutcome,
    policy: SessionPolicy | None,
    fence: Fence | None = None,
    expected: RunStatus = RunStatus.RUNNING,
    statuses: Sequence[RunStatus] = (),
    leading_events: Sequence[tuple[str, dict[str, Any]]] = (),
    session_role: str | None = None,
    layer_specs: list[dict[str, Any]] | None = None,
    extra_values: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Commit `outcome`; the run after it (`READ_COLUMNS` as a dict), or None when the run was
    not in the expected state (already terminal, or the fence is stale): then nothing is written.

    With a `fence` (a worker finishing its attempt) the run must be `expected`; otherwise
    (`statuses`) the caller holds the row lock: the API cancelling a queued run, a sweeper.
    """
    now = utcnow()
    outcome = outcome.storable()  # the in-process hand-off below carries these values too
    items = [*leading_events, (TERMINAL_EVENT[outcome.status], outcome.event_data(attempt))]
    values = outcome.columns(now)
    if extra_values:
        values.update(extra_values)
    if fence is not None:
        row = await repository.finish(
            session, fence, expected=expected, values=values, event_count=len(items)
        )
    else:
        row = await repository.settle(
            session, run_id, statuses=statuses, values=values, event_count=len(items)
        )
    if row is None:
        return None
    first = int(row["last_event_seq"]) - len(items) + 1
    await repository.insert_events(session, run_id, row["tenant_id"], first, items, now)
    if row["session_id"] is not None and policy is not None:
        await policy.on_run_terminal(
            session,
            TerminalRun(
                id=run_id,
                tenant_id=row["tenant_id"],
                session_id=row["session_id"],
                session_role=session_role,
                layer_specs=layer_specs,
            ),
            outcome,
        )
    update = RunUpdate(
        run_id=run_id,
        events=[
            EventRecord(first + offset, event_type, data, now)
            for offset, (event_type, data) in enumerate(items)
        ],
        run=row,
    )
    hand_off(session, run_topic(run_id), update)
    return row
