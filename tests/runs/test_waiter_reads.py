"""A long-poll in the process that queued or ran the run is answered without reading the run.

The statements are counted on the serving app's engine, so the test sees what the waiter cost,
on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.api_fixtures import Api, ApiFactory
from tests.runs.bodies import chat


@contextmanager
def run_reads(api: Api) -> Iterator[list[str]]:
    """The statements that read one run's row while the block runs (the worker's own
    bookkeeping, which reads runs by owner or status, is not counted)."""
    engine = api.client.app.state.strata.db.engine.sync_engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        normalized = " ".join(statement.split()).lower()
        if normalized.startswith("select") and " from runs where runs.id =" in normalized:
            seen.append(normalized)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("latency", [0.0, 0.3], ids=["fast", "slow"])
def test_waiting_for_a_run_this_process_queued_reads_nothing(api: Api, latency: float) -> None:
    created = api.post_run(chat("hi", llm={"latency_seconds": latency}))
    assert created.status_code == 202, created.text

    with run_reads(api) as reads:
        run = api.wait(created.json()["id"])

    assert run["status"] == "succeeded"
    assert run["output"]
    assert reads == []


@pytest.mark.postgres_only
def test_a_run_queued_here_and_run_by_another_process_wakes_its_waiter(
    api_factory: ApiFactory,
) -> None:
    # The API queues the run, another app's worker runs it: the waiter holds an entry saying
    # "queued here", which the other process's claim notification must drop, so the waiter
    # reads when the run ends rather than near its deadline.
    front = api_factory(run_worker=False)
    created = front.post_run(chat("hi", llm={"latency_seconds": 0.5}))
    assert created.status_code == 202, created.text
    api_factory()  # the worker

    started = time.monotonic()
    run = front.wait(created.json()["id"], timeout=30)

    assert run["status"] == "succeeded"
    assert time.monotonic() - started < 15


def test_a_long_poll_on_a_run_running_here_answers_its_row_at_the_deadline_without_a_read(
    api: Api,
) -> None:
    created = api.post_run(chat("hi", llm={"latency_seconds": 3}, metadata={"job": "j-1"}))
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    running = _until_running(api, run_id)

    with run_reads(api) as reads:
        started = time.monotonic()
        waited = api.wait(run_id, timeout=0.5)
        took = time.monotonic() - started

    assert reads == []
    assert took >= 0.5
    assert waited == running  # exactly what a read shows: status, times, metadata, nulls
    assert waited["status"] == "running"
    assert waited["metadata"] == {"job": "j-1"}
    assert api.wait(run_id)["status"] == "succeeded"


def _until_running(api: Api, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).json()
        if body["status"] == "running":
            return body
        time.sleep(0.02)
    raise AssertionError("the run never started")
