"""The lost-run sweeper, driven directly: what happens to runs whose worker stopped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from structlog.testing import capture_logs

from app.db import Database
from app.models import Run, RunStatus
from app.models.base import utcnow
from app.notifier import LocalNotifier
from app.runs.manager import sweep_lost_runs
from app.sessions.scope import SessionStore
from tests.api_fixtures import Api, ApiFactory, make_settings
from tests.db_fixtures import run_coroutine_blocking
from tests.runs.bodies import chat
from tests.sessions.test_sessions import node_run


async def _orphan_it(session: Any, run_id: str, status: RunStatus, **values: Any) -> None:
    """A write job: make `run_id` look like it was claimed by a worker that died (a lease owner
    with no worker row)."""
    await session.execute(
        update(Run)
        .where(Run.id == uuid.UUID(run_id))
        .values(
            status=status,
            lease_owner="dead-host:1:gone",
            started_at=utcnow() - timedelta(seconds=30),
            **values,
        )
    )


def _orphan(database_url: str, run_id: str, status: RunStatus, **values: Any) -> int:
    """`_orphan_it`, then sweep once, as another worker would."""

    async def _go() -> int:
        db = Database(database_url, LocalNotifier())
        try:
            await db.write(_orphan_it, run_id, status, **values)
            return await sweep_lost_runs(
                db, SessionStore(), me="sweeper:2:alive", settings=make_settings(database_url)
            )
        finally:
            await db.close()

    return run_coroutine_blocking(_go)


def _get(api: Api, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).json()
    return body


def test_a_lost_run_fails_with_worker_lost_and_one_terminal_event(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(run_worker=False)
    run_id = api.post_run(chat()).json()["id"]

    assert _orphan(api.database_url, run_id, RunStatus.RUNNING) == 1

    run = _get(api, run_id)
    assert run["status"] == "failed"
    assert run["error_type"] == "worker_lost"
    assert run["session_snapshot"] is None
    events = api.events(run_id)
    assert [e["type"] for e in events][-1] == "run_failed"
    assert _orphan(api.database_url, run_id, RunStatus.FAILED) == 0  # terminal: left alone


def test_a_lost_run_that_allowed_a_retry_is_queued_as_attempt_two(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(run_worker=False)
    run_id = api.post_run(chat(retry={"on_worker_lost": 1})).json()["id"]

    _orphan(api.database_url, run_id, RunStatus.RUNNING)

    run = _get(api, run_id)
    assert run["status"] == "queued"
    assert (run["attempt"], run["max_attempts"]) == (2, 2)
    assert api.events(run_id)[-1]["data"] == {"attempt": 2, "reason": "worker_lost"}


def test_a_lost_run_that_was_being_cancelled_ends_cancelled_and_is_not_retried(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(run_worker=False)
    run_id = api.post_run(chat(retry={"on_worker_lost": 1})).json()["id"]

    _orphan(api.database_url, run_id, RunStatus.CANCELLING, cancel_reason="stop it")

    run = _get(api, run_id)
    assert run["status"] == "cancelled"
    assert run["attempt"] == 1
    assert run["error"] == "stop it"
    assert api.events(run_id)[-1]["type"] == "run_cancelled"


def test_a_lost_session_run_keeps_the_sessions_previous_snapshot(api: Api) -> None:
    first = api.run_to_end(node_run("remember"))
    second_id = api.post_run(node_run("lost", llm={"latency_seconds": 30})).json()["id"]

    _orphan(api.database_url, second_id, RunStatus.RUNNING)

    assert _get(api, second_id)["error_type"] == "worker_lost"
    session = api.client.get(f"/v1/sessions/{first['session_id']}", headers=api.headers()).json()
    assert session["status"] == "active"
    assert session["current_run_id"] is None
    assert session["session_snapshot"] == first["session_snapshot"]


def test_a_sweep_run_again_with_its_batch_logs_each_lost_run_once(api_factory: ApiFactory) -> None:
    """A batch whose other job fails runs again with a savepoint per job, the sweep included:
    the sweep's `run_lost` line is written for what committed, once."""
    api = api_factory(run_worker=False)
    run_id = api.post_run(chat()).json()["id"]

    async def failing(session: Any) -> None:
        raise RuntimeError("this job fails")

    async def _go() -> tuple[list[Any], int]:
        db = Database(api.database_url, LocalNotifier())
        await db.start()
        try:
            await db.write(_orphan_it, run_id, RunStatus.RUNNING)
            with capture_logs() as logs:
                results = await asyncio.gather(
                    sweep_lost_runs(
                        db,
                        SessionStore(),
                        me="sweeper:2:alive",
                        settings=make_settings(api.database_url),
                    ),
                    db.write(failing),
                    return_exceptions=True,
                )
            assert results[0] == 1
            assert isinstance(results[1], RuntimeError)
            return logs, db.batch_reruns
        finally:
            await db.close()

    logs, reruns = run_coroutine_blocking(_go)

    assert reruns == 1  # the two jobs shared a batch, which ran again
    assert [line["run_id"] for line in logs if line["event"] == "run_lost"] == [run_id]
    assert _get(api, run_id)["status"] == "failed"
    assert [e["type"] for e in api.events(run_id)].count("run_failed") == 1
