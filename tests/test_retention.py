"""Retention: old terminal runs go with their events; what a session or a queued run still needs
stays; several sweepers at once delete each run once; workers sweep on a schedule; the CLI too."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from app.db import Database
from app.models import Run, RunEvent, WorkflowAgentRuntimeSession
from app.models.base import utcnow
from app.notifier import LocalNotifier
from app.retention import RetentionResult, run_retention
from tests.api_fixtures import Api, ApiFactory
from tests.db_fixtures import run_coroutine_blocking
from tests.runs.bodies import chat
from tests.sessions.test_sessions import node_run, retire

LONG_AGO = timedelta(days=40)


def _with_db(database_url: str, work: Any) -> Any:
    async def _go() -> Any:
        db = Database(database_url, LocalNotifier())
        try:
            return await work(db)
        finally:
            await db.close()

    return run_coroutine_blocking(_go)


def _sweep(database_url: str, *, days: float = 30, batch_size: int = 200, **kw: Any) -> Any:
    return _with_db(
        database_url, lambda db: run_retention(db, days=days, batch_size=batch_size, **kw)
    )


def _finished_long_ago(database_url: str, *run_ids: str) -> None:
    async def _backdate(session: Any) -> None:
        await session.execute(
            update(Run)
            .where(Run.id.in_([uuid.UUID(run_id) for run_id in run_ids]))
            .values(finished_at=utcnow() - LONG_AGO)
        )

    _with_db(database_url, lambda db: db.write(_backdate))


def _stored_events(database_url: str, run_id: str) -> int:
    """Rows in `run_events` for the run, counted in the database (not through the API)."""

    async def _count(session: Any) -> int:
        query = select(func.count()).where(RunEvent.run_id == uuid.UUID(run_id))
        return int(await session.scalar(query) or 0)

    return int(_with_db(database_url, lambda db: db.read(_count)))


def _status_code(api: Api, run_id: str) -> int:
    return int(api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).status_code)


def _in_the_future() -> datetime:
    """A pass run as if 31 days had passed: every terminal run is then old enough."""
    return utcnow() + timedelta(days=31)


def test_old_terminal_runs_go_with_their_events_and_recent_ones_stay(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(retention_days=0)  # the worker's own loop stays out of the way
    old = [api.run_to_end(chat(f"old {i}"))["id"] for i in range(2)]
    cancelled = api.post_run(chat("never ran", llm={"latency_seconds": 30}))
    assert cancelled.status_code == 202
    recent = api.run_to_end(chat("recent"))["id"]
    cancel = api.client.post(
        f"/v1/runs/{cancelled.json()['id']}/cancel", headers=api.headers(), json={}
    )
    assert api.wait(cancel.json()["id"])["status"] == "cancelled"
    old.append(cancelled.json()["id"])
    _finished_long_ago(api.database_url, *old)
    events_before = {run_id: _stored_events(api.database_url, run_id) for run_id in old}
    recent_events = _stored_events(api.database_url, recent)
    assert all(count >= 2 for count in events_before.values())

    result = _sweep(api.database_url)

    assert (result.runs_deleted, result.events_deleted) == (3, sum(events_before.values()))
    for run_id in old:
        assert _status_code(api, run_id) == 404
        assert _stored_events(api.database_url, run_id) == 0  # the cascade, on both databases
    assert api.client.get(f"/v1/runs/{recent}", headers=api.headers()).json()["status"] == (
        "succeeded"
    )
    assert _stored_events(api.database_url, recent) == recent_events
    assert _sweep(api.database_url).runs_deleted == 0


def test_a_pass_deletes_in_batches_until_none_is_left(api_factory: ApiFactory) -> None:
    api = api_factory(retention_days=0)
    ids = [api.run_to_end(chat(f"r{i}"))["id"] for i in range(5)]

    result = _sweep(api.database_url, batch_size=2, now=_in_the_future())

    assert (result.runs_deleted, result.batches) == (5, 3)
    assert all(_status_code(api, run_id) == 404 for run_id in ids)


def test_the_latest_snapshot_of_a_live_session_stays_until_the_session_is_cleaned(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(retention_days=0)
    first = api.run_to_end(node_run("first question"))
    second = api.run_to_end(node_run("second question"))
    plain = api.run_to_end(chat("no session"))

    result = _sweep(api.database_url, now=_in_the_future())

    assert result.runs_deleted == 2  # the first session run and the plain one
    assert _status_code(api, first["id"]) == 404
    assert _status_code(api, plain["id"]) == 404
    assert _status_code(api, second["id"]) == 200
    third = api.run_to_end(node_run("third question"))  # the session still resumes
    assert third["output"] == "echo #3: third question"

    session_id = third["session_id"]
    assert retire(api, session_id)["result"] == "cleaned"
    result = _sweep(api.database_url, now=_in_the_future())

    # second, third (the snapshot of a cleaned session) and the cleanup run
    assert result.runs_deleted == 3
    assert _status_code(api, third["id"]) == 404
    session = api.client.get(f"/v1/sessions/{session_id}", headers=api.headers())
    assert session.json()["status"] == "cleaned"


def test_a_run_that_a_running_run_starts_from_stays(api_factory: ApiFactory) -> None:
    api = api_factory(retention_days=0)
    first = api.run_to_end(node_run("first question"))
    second = api.post_run(node_run("slow", llm={"latency_seconds": 30}))
    assert second.status_code == 202
    session_id = second.json()["session_id"]

    async def _forget_session_snapshot(session: Any) -> None:
        # Take away the session's protection so that only the running run's reference is left.
        await session.execute(
            update(WorkflowAgentRuntimeSession)
            .where(WorkflowAgentRuntimeSession.id == uuid.UUID(session_id))
            .values(snapshot_run_id=None)
        )

    _with_db(api.database_url, lambda db: db.write(_forget_session_snapshot))
    result = _sweep(api.database_url, now=_in_the_future())

    assert result.runs_deleted == 0
    assert _status_code(api, first["id"]) == 200
    cancel = api.client.post(
        f"/v1/runs/{second.json()['id']}/cancel", headers=api.headers(), json={}
    )
    assert cancel.status_code == 200
    assert api.wait(second.json()["id"])["status"] == "cancelled"
    assert _sweep(api.database_url, now=_in_the_future()).runs_deleted == 2


def test_two_passes_at_once_delete_each_run_once(api_factory: ApiFactory) -> None:
    api = api_factory(retention_days=0)
    ids = [api.run_to_end(chat(f"r{i}"))["id"] for i in range(12)]
    total_events = sum(_stored_events(api.database_url, run_id) for run_id in ids)
    now = _in_the_future()

    async def _two_sweepers() -> tuple[RetentionResult, RetentionResult]:
        # two processes' worth of database access, each with its own writer and pool
        first, second = (
            Database(api.database_url, LocalNotifier()),
            Database(api.database_url, LocalNotifier()),
        )
        await first.start()
        await second.start()
        try:
            return await asyncio.gather(
                run_retention(first, days=30, batch_size=2, now=now),
                run_retention(second, days=30, batch_size=2, now=now),
            )
        finally:
            await first.close()
            await second.close()

    one, two = run_coroutine_blocking(_two_sweepers)

    assert one.runs_deleted + two.runs_deleted == 12
    assert one.events_deleted + two.events_deleted == total_events
    assert all(_status_code(api, run_id) == 404 for run_id in ids)


def test_retention_days_zero_keeps_every_run(api_factory: ApiFactory) -> None:
    api = api_factory(retention_days=0)
    run_id = api.run_to_end(chat())["id"]

    result = _sweep(api.database_url, days=0, now=_in_the_future())

    assert result == RetentionResult()
    assert _status_code(api, run_id) == 200


def test_every_worker_sweeps_on_a_schedule_and_counts_it_in_the_metrics(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(
        retention_days=30, retention_interval_seconds=0.2, metrics_token="operator-token"
    )
    old = api.run_to_end(chat("old"))["id"]
    kept = api.run_to_end(chat("recent"))["id"]
    events = _stored_events(api.database_url, old)
    _finished_long_ago(api.database_url, old)

    deadline = time.monotonic() + 15
    while _status_code(api, old) != 404 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert _status_code(api, old) == 404
    assert _status_code(api, kept) == 200
    metrics = api.client.get("/metrics", headers={"Authorization": "Bearer operator-token"}).text
    assert "strata_retention_runs_deleted_total 1.0" in metrics
    assert f"strata_retention_events_deleted_total {float(events)}" in metrics


def test_strata_retention_run_deletes_old_runs_and_prints_the_counts(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(retention_days=0)
    old = api.run_to_end(chat("old"))["id"]
    kept = api.run_to_end(chat("recent"))["id"]
    events = _stored_events(api.database_url, old)
    _finished_long_ago(api.database_url, old)
    env = {**os.environ, "STRATA_DATABASE_URL": api.database_url, "STRATA_RETENTION_DAYS": "30"}

    done = subprocess.run(
        [sys.executable, "-m", "app", "retention", "run", "--batch-size", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert (printed["runs_deleted"], printed["events_deleted"]) == (1, events)
    assert _status_code(api, old) == 404
    assert _status_code(api, kept) == 200
    off = subprocess.run(
        [sys.executable, "-m", "app", "retention", "run", "--days", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert off.returncode == 0
    assert json.loads(off.stdout)["runs_deleted"] == 0
    assert "retention is off" in off.stderr
