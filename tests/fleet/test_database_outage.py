"""A PostgreSQL restart under load: 503s meanwhile, nothing lost, everything resumes by itself.

This test stops and starts the machine's PostgreSQL cluster (`pg_ctlcluster`), so it needs to
run as the cluster's owner or root and is skipped where that tool is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx2
import pytest

from tests.fleet.conftest import client, query
from tests.fleet.processes import Fleet, wait_until
from tests.runs.bodies import chat

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(shutil.which("pg_ctlcluster") is None, reason="needs pg_ctlcluster"),
]


def _cluster(action: str) -> None:
    versions = sorted(Path("/etc/postgresql").iterdir())
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0


def test_a_postgresql_restart_is_503_meanwhile_and_loses_no_run(
    fleet: Fleet, key: str, database_url: str
) -> None:
    api = fleet.start_api(STRATA_LEASE_SECONDS="30", STRATA_DB_CONNECT_TIMEOUT_SECONDS="2")
    fleet.start_worker("worker", STRATA_LEASE_SECONDS="30", STRATA_WORKER_CONCURRENCY="8")
    http = client(api.base_url, key)
    ids = [
        http.post("/v1/runs", json=chat(f"{i}", llm={"latency_seconds": 1.5})).json()["id"]
        for i in range(6)
    ]
    waiter_result: dict[str, object] = {}

    def wait_for_last() -> None:
        with client(api.base_url, key) as waiter:
            response = waiter.get(f"/v1/runs/{ids[-1]}/wait", params={"timeout_seconds": 60})
            waiter_result["status"] = response.status_code
            waiter_result["body"] = response.json()

    waiter = threading.Thread(target=wait_for_last)
    waiter.start()
    time.sleep(0.3)

    _cluster("stop")
    try:
        started = time.monotonic()
        during = http.post("/v1/runs", json=chat("during the outage"))
        elapsed = time.monotonic() - started
        assert during.status_code == 503, during.text
        assert during.json()["error"]["code"] == "database_unavailable"
        assert "Retry-After" in during.headers
        assert elapsed < 15
        assert http.get(f"/v1/runs/{ids[0]}").status_code == 503
    finally:
        _cluster("start")
    wait_until(_pg_ready, 30, "PostgreSQL did not come back")

    def runs_done() -> bool:
        try:
            rows = query(database_url, "SELECT status FROM runs")
        except Exception:
            return False
        return all(row["status"] in ("succeeded", "failed", "cancelled") for row in rows)

    wait_until(runs_done, 60, "runs did not finish after the restart", interval=0.5)
    rows = query(database_url, "SELECT id, status FROM runs")
    assert len(rows) == len(ids)
    terminal = query(
        database_url,
        "SELECT run_id, count(*) AS n FROM run_events WHERE type LIKE 'run_%' AND type IN "
        "('run_succeeded','run_failed','run_cancelled','run_paused') GROUP BY run_id",
    )
    assert sorted(int(row["n"]) for row in terminal) == [1] * len(ids)

    waiter.join(timeout=60)
    assert waiter_result.get("status") == 200
    body = waiter_result["body"]
    assert isinstance(body, dict)
    assert body["status"] in ("succeeded", "failed")

    # new work flows again, and a stream follows it to the end
    fresh = wait_until(lambda: _post_ok(http), 30, "the API did not recover after the restart")
    with httpx2.stream(
        "GET",
        f"{api.base_url}/v1/runs/{fresh}/events/stream",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as stream:
        kinds = [
            line.split(": ", 1)[1] for line in stream.iter_lines() if line.startswith("event:")
        ]
    assert kinds[-1] == "run_succeeded"


def test_runs_that_end_during_a_long_outage_end_when_it_is_over(
    fleet: Fleet, key: str, database_url: str
) -> None:
    # The worker tried writing a run's end for max(3 x lease, 30 s), then gave up: the run stayed
    # running, owned by a live worker, so no sweeper took it. A failover can last that long.
    # One worker, so no other sweeper can settle its runs either.
    api = fleet.start_api(STRATA_DB_CONNECT_TIMEOUT_SECONDS="2")
    worker = fleet.start_worker(
        "worker", STRATA_LEASE_SECONDS="10", STRATA_DB_CONNECT_TIMEOUT_SECONDS="2"
    )
    http = client(api.base_url, key)
    ids = [
        http.post("/v1/runs", json=chat(f"{i}", llm={"latency_seconds": 3})).json()["id"]
        for i in range(4)
    ]
    wait_until(
        lambda: (
            {row["status"] for row in query(database_url, "SELECT status FROM runs")} == {"running"}
        ),
        30,
        "the runs did not start",
    )

    _cluster("stop")
    try:
        # the runs end about 3 s in; their writes then fail for more than 30 s
        time.sleep(40)
    finally:
        _cluster("start")
    wait_until(_pg_ready, 30, "PostgreSQL did not come back")

    def statuses() -> dict[str, str]:
        try:
            return {str(row["id"]): row["status"] for row in query(database_url, _RUNS)}
        except Exception:
            return {}

    wait_until(
        lambda: set(statuses().values()) == {"succeeded"},
        30,
        "runs that ended during the outage did not end after it",
        interval=0.5,
    )
    assert sorted(statuses()) == sorted(ids)
    terminal = query(
        database_url,
        "SELECT run_id, count(*) AS n FROM run_events WHERE type IN "
        "('run_succeeded','run_failed','run_cancelled','run_paused') GROUP BY run_id",
    )
    assert sorted(int(row["n"]) for row in terminal) == [1] * len(ids)
    assert worker.process.poll() is None  # the same worker finished them


_RUNS = "SELECT id, status FROM runs"


def _post_ok(http: httpx2.Client) -> str | None:
    response = http.post("/v1/runs", json=chat("after"))
    return response.json()["id"] if response.status_code == 202 else None
