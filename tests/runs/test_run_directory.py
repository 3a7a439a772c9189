"""`RunDirectory`: what the process knows of a run without reading it, and when it stops knowing.

A waiter answers from the directory instead of reading, so an entry that outlives its truth
would answer a wrong state: every kind of news that may change a run's row must drop it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.models import RunPurpose, RunStatus
from app.notifier import LocalNotifier, run_topic
from app.runs.repository import ClaimedRun
from app.runs.service import RunDirectory
from app.runs.terminal import EventRecord, RunUpdate

TENANT = uuid.uuid4()
CLAIMED_AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _directory_with_a_running_run() -> tuple[RunDirectory, LocalNotifier, uuid.UUID]:
    notifier = LocalNotifier()
    directory = RunDirectory()
    directory.listen(notifier)
    run_id = uuid.uuid4()
    directory.executing[run_id] = ClaimedRun(
        id=run_id,
        tenant_id=TENANT,
        attempt=1,
        purpose=RunPurpose.AGENT,
        composition={},
        inputs={},
        session_snapshot_in=None,
        snapshot_in_run_id=None,
        session_id=None,
        metadata={"job": "j-1"},
        started_seq=2,
        max_attempts=1,
        idempotency_key="k-1",
        created_at=CLAIMED_AT - timedelta(seconds=1),
        queued_at=CLAIMED_AT - timedelta(seconds=1),
        started_at=CLAIMED_AT,
        updated_at=CLAIMED_AT,
    )
    return directory, notifier, run_id


def _events(run_id: uuid.UUID, *types: str, at: datetime) -> RunUpdate:
    return RunUpdate(run_id, [EventRecord(3 + i, kind, {}, at) for i, kind in enumerate(types)])


def test_a_running_run_is_shown_as_claimed_and_follows_its_own_event_appends() -> None:
    directory, notifier, run_id = _directory_with_a_running_run()

    shown = directory.running(run_id, TENANT)
    assert shown is not None
    assert (shown.status, shown.started_at, shown.updated_at) == (
        RunStatus.RUNNING,
        CLAIMED_AT,
        CLAIMED_AT,
    )
    assert (shown.idempotency_key, shown.metadata, shown.output) == ("k-1", {"job": "j-1"}, None)

    later = CLAIMED_AT + timedelta(seconds=2)
    notifier.dispatch(run_topic(run_id), _events(run_id, "tool_call", "tool_result", at=later))
    shown = directory.running(run_id, TENANT)
    assert shown is not None and shown.updated_at == later
    assert directory.running(run_id, uuid.uuid4()) is None  # another tenant learns nothing


@pytest.mark.parametrize(
    "news",
    ["cancelling here", "requeued here", "another process", "listener reconnected"],
)
def test_news_the_directory_cannot_follow_makes_it_forget_the_row(news: str) -> None:
    directory, notifier, run_id = _directory_with_a_running_run()
    at = CLAIMED_AT + timedelta(seconds=1)

    if news == "cancelling here":
        notifier.dispatch(run_topic(run_id), _events(run_id, "run_cancelling", at=at))
    elif news == "requeued here":
        notifier.dispatch(run_topic(run_id), _events(run_id, "run_requeued", at=at))
    elif news == "another process":
        notifier.dispatch(run_topic(run_id))  # a bare notification: only the database knows
    else:
        notifier.dispatch_all()

    assert directory.running(run_id, TENANT) is None
    assert directory.executes(run_id, TENANT)  # still ends here, or a notification says so


def test_a_run_queued_here_is_forgotten_when_another_process_touches_it() -> None:
    notifier = LocalNotifier()
    directory = RunDirectory()
    directory.listen(notifier)
    mine, theirs, lost = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for run_id in (mine, theirs, lost):
        directory.queued(run_id, TENANT)

    notifier.dispatch(run_topic(theirs))  # claimed by another process's worker

    assert directory.executes(mine, TENANT)
    assert not directory.executes(theirs, TENANT)
    notifier.dispatch_all()  # the listener reconnected: anything may have happened meanwhile
    assert not directory.executes(mine, TENANT) and not directory.executes(lost, TENANT)


def test_pending_runs_are_bounded_by_dropping_the_oldest() -> None:
    directory = RunDirectory(max_pending=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for run_id in (first, second, third):
        directory.queued(run_id, TENANT)

    assert not directory.executes(first, TENANT)
    assert directory.executes(second, TENANT) and directory.executes(third, TENANT)
