"""Every accepted run reaches exactly one terminal state, whatever process dies.

Real processes on PostgreSQL: one `strata serve --no-worker` and `strata worker`s, with a
2-second lease so a dead worker is detected quickly.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from tests.fleet.conftest import client, query
from tests.fleet.processes import Fleet, owner_pid, wait_until
from tests.runs.bodies import chat

pytestmark = pytest.mark.postgres_only

TERMINAL = ("succeeded", "paused", "failed", "cancelled")


def _terminal_events(database_url: str) -> dict[str, int]:
    rows = query(
        database_url,
        "SELECT run_id, count(*) AS n FROM run_events WHERE type IN "
        "('run_succeeded','run_paused','run_failed','run_cancelled') GROUP BY run_id",
    )
    return {str(row["run_id"]): int(row["n"]) for row in rows}


def _runs(database_url: str) -> dict[str, dict[str, Any]]:
    rows = query(
        database_url,
        "SELECT id, status, attempt, max_attempts, error_type, reason, lease_owner, session_id "
        "FROM runs",
    )
    return {str(row["id"]): row for row in rows}


def _scope(node: str) -> dict[str, str]:
    return {
        "app_id": "app",
        "workflow_id": "wf",
        "workflow_run_id": "wr-crash",
        "node_id": node,
        "binding_id": "b",
        "agent_id": "a",
        "agent_config_snapshot_id": "s",
    }


# a session's latest snapshot is stored once, on the run that produced it
_SESSION_STATE = (
    "SELECT s.status, r.session_snapshot FROM workflow_agent_runtime_sessions s "
    "LEFT JOIN runs r ON r.id = s.snapshot_run_id"
)


def test_a_killed_worker_loses_no_run_and_retries_only_what_opted_in(
    fleet: Fleet, key: str, database_url: str
) -> None:
    api = fleet.start_api()
    doomed = fleet.start_worker("worker-a", STRATA_WORKER_CONCURRENCY="16")
    survivor = fleet.start_worker("worker-b", STRATA_WORKER_CONCURRENCY="16")
    http = client(api.base_url, key)

    # a session with a saved snapshot, whose next run will be lost
    first = http.post("/v1/runs", json=chat("remember", session=_scope("n0"))).json()
    assert http.get(f"/v1/runs/{first['id']}/wait").json()["status"] == "succeeded"
    saved = query(database_url, _SESSION_STATE)

    slow = {"latency_seconds": 2.5}
    ids: dict[str, bool] = {}
    for index in range(16):
        retry = index % 2 == 0
        body = chat(f"job {index}", llm=slow, retry={"on_worker_lost": 1 if retry else 0})
        if index == 1:
            body["session"] = _scope("n0")
        response = http.post("/v1/runs", json=body)
        assert response.status_code == 202, response.text
        ids[response.json()["id"]] = retry

    def doomed_holds_runs() -> list[str]:
        runs = _runs(database_url)
        return [
            run_id
            for run_id in ids
            if runs[run_id]["status"] == "running"
            and owner_pid(runs[run_id]["lease_owner"]) == doomed.pid
        ]

    lost = wait_until(doomed_holds_runs, 10, "worker-a never claimed a run")
    time.sleep(0.3)
    lost = doomed_holds_runs()
    doomed.signal(signal.SIGKILL)
    doomed.wait_exit(10)

    def all_terminal() -> bool:
        return all(run["status"] in TERMINAL for run in _runs(database_url).values())

    wait_until(all_terminal, 30, "some runs never reached a terminal state", interval=0.2)
    runs = _runs(database_url)
    terminal_events = _terminal_events(database_url)
    assert all(terminal_events.get(run_id) == 1 for run_id in runs), terminal_events
    for run_id in lost:
        if ids[run_id]:
            assert runs[run_id]["status"] == "succeeded"
            assert runs[run_id]["attempt"] == 2
            assert owner_pid(runs[run_id]["lease_owner"]) is None  # cleared at the end
            events = http.get(f"/v1/runs/{run_id}/events").json()["items"]
            types = [event["type"] for event in events]
            assert "run_requeued" in types
            assert events[-1]["data"]["attempt"] == 2
        else:
            assert runs[run_id]["status"] == "failed"
            assert runs[run_id]["error_type"] == "worker_lost"
    survivors = [run_id for run_id in ids if run_id not in lost]
    assert all(runs[run_id]["status"] == "succeeded" for run_id in survivors)
    assert all(runs[run_id]["attempt"] == 1 for run_id in survivors)

    session_run = next(run_id for run_id in ids if runs[run_id]["session_id"] is not None)
    row = query(database_url, _SESSION_STATE)
    assert row[0]["status"] == "active"
    if session_run in lost:
        # failed by a lost worker: the previous snapshot is kept as it was
        assert row[0]["session_snapshot"] == saved[0]["session_snapshot"]
    assert survivor.process.poll() is None


def test_a_paused_worker_that_lost_its_lease_cannot_write(
    fleet: Fleet, key: str, database_url: str
) -> None:
    api = fleet.start_api()
    stale = fleet.start_worker("worker-stale")
    http = client(api.base_url, key)
    body = chat("slow", llm={"latency_seconds": 3, "reply": "done"}, retry={"on_worker_lost": 1})
    run_id = http.post("/v1/runs", json=body).json()["id"]
    wait_until(lambda: _runs(database_url)[run_id]["status"] == "running", 10, "never claimed")
    stale.signal(signal.SIGSTOP)
    fresh = fleet.start_worker("worker-fresh")

    run = http.get(f"/v1/runs/{run_id}/wait", params={"timeout_seconds": 30}).json()
    assert run["status"] == "succeeded"
    assert run["attempt"] == 2

    stale.signal(signal.SIGCONT)  # it wakes up believing it still runs attempt 1
    time.sleep(4)  # its model call ends and it tries to write events and the terminal state
    events = http.get(f"/v1/runs/{run_id}/events").json()["items"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    terminal = [e for e in events if e["type"] in {f"run_{s}" for s in TERMINAL}]
    assert len(terminal) == 1
    assert terminal[0]["data"]["attempt"] == 2
    requeued = next(e["seq"] for e in events if e["type"] == "run_requeued")
    started = [e for e in events if e["type"] == "run_started" and e["seq"] > requeued]
    assert started[0]["data"]["worker"].split(":")[1] == str(fresh.pid)
    assert http.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
    assert "run_lease_lost" in stale.log() or "run_fenced_out" in stale.log()


def test_sigterm_on_a_busy_worker_hands_its_runs_back_instead_of_cancelling_them(
    fleet: Fleet, key: str, database_url: str
) -> None:
    # Shutdown is not a cancel: past the grace period a run that allowed a retry is queued
    # again as its next attempt (another worker finishes it); one that did not fails with
    # `worker_shutdown`, like after a crash. Nothing is left running.
    api = fleet.start_api()
    worker = fleet.start_worker("worker", STRATA_SHUTDOWN_GRACE_SECONDS="0.5")
    http = client(api.base_url, key)
    retried = {
        http.post(
            "/v1/runs",
            json=chat(f"long {i}", llm={"latency_seconds": 3}, retry={"on_worker_lost": 1}),
        ).json()["id"]
        for i in range(2)
    }
    failed = {
        http.post("/v1/runs", json=chat(f"long {i}", llm={"latency_seconds": 3})).json()["id"]
        for i in range(2)
    }
    ids = retried | failed
    wait_until(
        lambda: all(_runs(database_url)[i]["status"] == "running" for i in ids),
        10,
        "runs were not claimed",
    )

    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(15) == 0

    runs = _runs(database_url)
    for run_id in failed:
        assert runs[run_id]["status"] == "failed"
        assert runs[run_id]["error_type"] == "worker_shutdown"
        assert http.get(f"/v1/runs/{run_id}").json()["session_snapshot"] is None
    for run_id in retried:
        assert runs[run_id]["status"] == "queued"
        assert runs[run_id]["attempt"] == 2
    assert _terminal_events(database_url) == dict.fromkeys(failed, 1)

    fleet.start_worker("worker-next")
    for run_id in retried:
        run = http.get(f"/v1/runs/{run_id}/wait", params={"timeout_seconds": 20}).json()
        assert (run["status"], run["attempt"]) == ("succeeded", 2)
    assert _terminal_events(database_url) == dict.fromkeys(ids, 1)


def test_work_spreads_across_workers(fleet: Fleet, key: str, database_url: str) -> None:
    api = fleet.start_api()
    workers = [fleet.start_worker(f"w{i}", STRATA_WORKER_CONCURRENCY="4") for i in range(2)]
    http = client(api.base_url, key)
    ids = [
        http.post("/v1/runs", json=chat(f"{i}", llm={"latency_seconds": 0.5})).json()["id"]
        for i in range(16)
    ]
    for run_id in ids:
        assert http.get(f"/v1/runs/{run_id}/wait").json()["status"] == "succeeded"
    events = query(database_url, "SELECT data FROM run_events WHERE type = 'run_started'")
    pids = {int(row["data"]["worker"].split(":")[1]) for row in events}
    assert pids == {worker.pid for worker in workers}


def test_a_cancel_sent_to_another_api_process_stops_the_run(
    fleet: Fleet, key: str, database_url: str
) -> None:
    api_a = fleet.start_api("api-a")
    api_b = fleet.start_api("api-b")
    fleet.start_worker("worker")
    run_id = (
        client(api_a.base_url, key)
        .post("/v1/runs", json=chat("long", llm={"latency_seconds": 30}))
        .json()["id"]
    )
    wait_until(lambda: _runs(database_url)[run_id]["status"] == "running", 10, "not claimed")

    response = client(api_b.base_url, key).post(f"/v1/runs/{run_id}/cancel")
    assert response.status_code == 200

    run = (
        client(api_a.base_url, key)
        .get(f"/v1/runs/{run_id}/wait", params={"timeout_seconds": 10})
        .json()
    )
    assert run["status"] == "cancelled"
    assert run["reason"] == "cancel_requested"


def test_the_api_refuses_new_runs_with_429_when_a_tenant_queue_is_full(
    fleet: Fleet, key: str
) -> None:
    api = fleet.start_api(STRATA_MAX_QUEUED_RUNS_PER_TENANT="2")
    http = client(api.base_url, key)
    codes = [http.post("/v1/runs", json=chat()).status_code for _ in range(3)]

    assert codes == [202, 202, 429]
    response = http.post("/v1/runs", json=chat())
    assert response.json()["error"]["code"] == "queue_full"
    assert int(response.headers["Retry-After"]) > 0


def test_a_stream_served_by_the_api_follows_a_worker_process_live(
    fleet: Fleet, key: str, database_url: str
) -> None:
    api = fleet.start_api()
    fleet.start_worker("worker")
    http = client(api.base_url, key)
    body = chat("talk", llm={"reply": "y" * 60, "stream_chunk_chars": 6, "latency_seconds": 1})
    run_id = http.post("/v1/runs", json=body).json()["id"]

    received: list[tuple[float, str]] = []
    with http.stream("GET", f"/v1/runs/{run_id}/events/stream") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                received.append((time.monotonic(), line.split(": ", 1)[1]))
    kinds = [kind for _, kind in received]

    assert kinds[0] == "run_queued"
    assert kinds[-1] == "run_succeeded"
    assert "agent_message_delta" in kinds
    # the stream was open before the worker produced its events: they arrived live, over
    # LISTEN/NOTIFY from the worker process, spread over the model's latency
    assert received[-1][0] - received[0][0] > 0.5


def test_sigterm_on_the_api_finishes_open_requests_and_exits(
    fleet: Fleet, key: str, database_url: str
) -> None:
    api = fleet.start_api(STRATA_SHUTDOWN_GRACE_SECONDS="5")
    http = client(api.base_url, key)
    run_id = http.post("/v1/runs", json=chat()).json()["id"]  # no worker: stays queued
    result: dict[str, Any] = {}

    def long_poll() -> None:
        with client(api.base_url, key) as waiter:
            response = waiter.get(f"/v1/runs/{run_id}/wait", params={"timeout_seconds": 2})
            result["status"] = response.status_code
            result["run"] = response.json()

    thread = threading.Thread(target=long_poll)
    thread.start()
    time.sleep(0.5)
    api.signal(signal.SIGTERM)
    thread.join(timeout=15)

    assert result["status"] == 200
    assert result["run"]["status"] == "queued"
    # uvicorn shuts down cleanly, then re-raises the signal it caught (exit by SIGTERM)
    assert api.wait_exit(15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in api.log()
