"""Liveness is per worker: many runs in flight cost one heartbeat, a stalled worker loses its runs.

Real processes (`strata serve --no-worker` and `strata worker`s) on the test's database, SQLite
or PostgreSQL: several processes share the SQLite file, as a small deployment may.
"""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import httpx2

from tests.fleet.conftest import client, query
from tests.fleet.processes import Fleet, owner_pid, wait_until
from tests.runs.bodies import chat

TERMINAL = ("succeeded", "paused", "failed", "cancelled")


def _runs(database_url: str) -> dict[str, dict[str, Any]]:
    rows = query(
        database_url, "SELECT id, status, attempt, error_type, reason, lease_owner FROM runs"
    )
    return {str(uuid.UUID(str(row["id"]))): row for row in rows}


def _post_all(http: httpx2.Client, bodies: list[dict[str, Any]]) -> list[str]:
    ids = []
    for body in bodies:
        response = http.post("/v1/runs", json=body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def test_five_hundred_runs_in_flight_keep_their_worker_alive_on_a_short_lease(
    fleet: Fleet, key: str, database_url: str
) -> None:
    # 500 runs in flight on one worker, a 3-second lease renewed every 0.2 s: renewing one lease
    # per run (one statement each, ~29 per run before the rework) would take longer than the
    # lease, and the other worker's sweeper would declare them lost. With one heartbeat per
    # worker, none is. Not 1 s: on PostgreSQL on a busy 2-vCPU machine, the worker starting its
    # 500 runs delays its own heartbeat past 1-2 s about every other time (the liveness gap this
    # leaves is in the closing notes: the heartbeat shares the event loop with the runs).
    timings = {
        "STRATA_LEASE_SECONDS": "3",
        "STRATA_HEARTBEAT_SECONDS": "0.2",
        "STRATA_SWEEP_SECONDS": "0.2",
    }
    api = fleet.start_api(**timings)
    http = client(api.base_url, key)
    # queued before the worker starts, so it holds all of them at once however slowly they were
    # posted (a loaded CI machine posts 500 runs in more than a run's latency)
    ids = _post_all(http, [chat(f"job {i}", llm={"latency_seconds": 6}) for i in range(500)])
    busy = fleet.start_worker("busy", STRATA_WORKER_CONCURRENCY="600", **timings)
    wait_until(
        lambda: sum(r["status"] == "running" for r in _runs(database_url).values()) == 500,
        30,
        "the busy worker never held all 500 runs",
        interval=0.2,
    )
    watcher = fleet.start_worker("watcher", STRATA_WORKER_CONCURRENCY="4", **timings)

    wait_until(
        lambda: all(r["status"] in TERMINAL for r in _runs(database_url).values()),
        60,
        "some runs never ended",
        interval=0.5,
    )
    runs = _runs(database_url)
    not_succeeded = [run for run in runs.values() if run["status"] != "succeeded"]
    assert not_succeeded == [], f"{len(not_succeeded)} runs did not succeed: {not_succeeded[:3]}"
    assert {run["attempt"] for run in runs.values()} == {1}
    assert set(runs) == set(ids)
    assert "run_lost" not in watcher.log()
    assert busy.process.poll() is None and watcher.process.poll() is None


def test_a_stalled_worker_loses_its_runs_to_another_workers_sweeper(
    fleet: Fleet, key: str, database_url: str
) -> None:
    lease, sweep = 2.0, 0.5
    api = fleet.start_api()
    stalled = fleet.start_worker("stalled")
    http = client(api.base_url, key)
    ids = _post_all(http, [chat(f"long {i}", llm={"latency_seconds": 60}) for i in range(3)])
    wait_until(
        lambda: all(owner_pid(_runs(database_url)[i]["lease_owner"]) == stalled.pid for i in ids),
        15,
        "the first worker never claimed the runs",
    )
    fleet.start_worker("sweeper")

    stalled.signal(signal.SIGSTOP)  # alive, but it no longer heartbeats
    stopped_at = time.monotonic()
    wait_until(
        lambda: all(_runs(database_url)[i]["status"] in TERMINAL for i in ids),
        lease + sweep + 10,
        "the stalled worker's runs were not taken over",
        interval=0.2,
    )
    took = time.monotonic() - stopped_at

    runs = _runs(database_url)
    assert all(runs[i]["error_type"] == "worker_lost" for i in ids)
    # detected within lease + sweep, plus the time a heartbeat interval and a poll take
    assert took < lease + sweep + 5, took
