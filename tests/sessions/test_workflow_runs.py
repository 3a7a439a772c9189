"""Workflow runs: close (seal, cancel in flight, retire every session), read, and the 409 after.

Through HTTP on both databases. Node runs use `llm.test` with `latency_seconds` to keep a run
in flight; plain runs name the workflow run in their session scope.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.models import ApiKeyRole
from tests.agents.support import create_agent, soul
from tests.agents.test_node_runs import bind
from tests.agents.test_node_runs import node_run as post_node_run
from tests.api_fixtures import Api, ApiFactory, create_key
from tests.sessions.test_sessions import node_run, retire, scope, sessions


def close(api: Api, workflow_run_id: str = "wr-1", key: str | None = None, **body: Any) -> Any:
    return api.client.post(
        f"/v1/workflow-runs/{workflow_run_id}/close", json=body, headers=api.headers(key)
    )


def closed(api: Api, workflow_run_id: str = "wr-1", **body: Any) -> dict[str, Any]:
    response = close(api, workflow_run_id, **body)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def get_workflow_run(api: Api, workflow_run_id: str = "wr-1", key: str | None = None) -> Any:
    return api.client.get(f"/v1/workflow-runs/{workflow_run_id}", headers=api.headers(key))


def run_of(api: Api, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).json()
    return body


def until_running(api: Api, run_id: str) -> None:
    deadline = time.monotonic() + 15
    while run_of(api, run_id)["status"] != "running":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


def slow_agent(api: Api, name: str = "slow", seconds: float = 30) -> dict[str, Any]:
    model = {"provider": "test", "model": "t", "settings": {"latency_seconds": seconds}}
    return create_agent(api, name, config=soul(model=model))


def by_node(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {report["node_id"]: report for report in reports}


def test_close_with_cancel_in_flight_cancels_the_running_node_run_and_cleans_every_session(
    api: Api,
) -> None:
    fast = create_agent(api, "fast")
    bind(api, fast["id"], node="retired-before")
    bind(api, fast["id"], node="idle")
    bind(api, slow_agent(api)["id"], node="busy")
    retired_run = api.wait(post_node_run(api, node="retired-before").json()["id"])
    assert retire(api, retired_run["session_id"])["result"] == "cleaned"
    idle_run = api.wait(post_node_run(api, node="idle").json()["id"])
    busy = post_node_run(api, node="busy")
    assert busy.status_code == 202, busy.text
    busy_id = busy.json()["id"]
    until_running(api, busy_id)

    report = closed(api, cancel_in_flight=True, wait_seconds=20)

    assert report["workflow_run_id"] == "wr-1"
    assert report["status"] == "closed"
    assert report["closed_at"] is not None
    assert report["cancelled_run_ids"] == [busy_id]
    assert report["active_sessions"] == 0
    assert report["next_cursor"] is None
    reports = by_node(report["reports"])
    assert set(reports) == {"retired-before", "idle", "busy"}
    assert {name: r["result"] for name, r in reports.items()} == {
        "retired-before": "already_cleaned",
        "idle": "cleaned",
        "busy": "cleaned",
    }
    rows = {row["node_id"]: row for row in sessions(api, workflow_run_id="wr-1")}
    for name, entry in reports.items():
        assert entry["session_id"] == rows[name]["id"]
        assert entry["binding_id"] == rows[name]["binding_id"]
        assert entry["agent_id"] == rows[name]["agent_id"]
        assert entry["current_run_id"] is None
    assert reports["busy"]["last_run_id"] == busy_id  # the cancelled run released its layers
    assert reports["busy"]["cleanup_run_id"] is None
    assert reports["idle"]["last_run_id"] == idle_run["id"]
    assert run_of(api, reports["idle"]["cleanup_run_id"])["purpose"] == "cleanup"
    assert reports["retired-before"]["cleanup_run_id"] == rows["retired-before"]["cleanup_run_id"]
    assert {row["status"] for row in rows.values()} == {"cleaned"}

    cancelled = run_of(api, busy_id)
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "the workflow run was closed"
    events = api.events(busy_id)
    terminal = [e for e in events if e["type"] in ("run_succeeded", "run_failed", "run_cancelled")]
    assert [e["type"] for e in terminal] == ["run_cancelled"]
    assert events[-1]["type"] == "run_cancelled"


def test_after_close_node_runs_and_plain_runs_get_409_and_the_cleaned_session_stays_cleaned(
    api: Api,
) -> None:
    agent = create_agent(api)
    bind(api, agent["id"])
    first = api.wait(post_node_run(api).json()["id"])
    plain = api.run_to_end(node_run("hello", session=scope(node_id="plain")))
    assert closed(api, wait_seconds=10)["active_sessions"] == 0
    before = {row["id"]: row for row in sessions(api, workflow_run_id="wr-1")}

    again = post_node_run(api, node_execution_id="ex-2")
    plain_again = api.post_run(node_run("again", session=scope(node_id="plain")))
    new_node = api.post_run(node_run("new", session=scope(node_id="never-ran")))

    for response in (again, plain_again, new_node):
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "workflow_run_closed"
        assert response.json()["error"]["details"] == {"workflow_run_id": "wr-1"}
    after = {row["id"]: row for row in sessions(api, workflow_run_id="wr-1")}
    assert after == before  # nothing reactivated, no session added
    assert {row["status"] for row in after.values()} == {"cleaned"}
    assert {row["current_run_id"] for row in after.values()} == {None}
    assert {first["session_id"], plain["session_id"]} == set(after)
    runs = api.client.get("/v1/runs", params={"limit": 200}, headers=api.headers()).json()
    assert all(
        run["purpose"] == "cleanup" or run["id"] in (first["id"], plain["id"])
        for run in runs["items"]
    )
    # another workflow run of the tenant is not affected
    assert api.run_to_end(node_run("other", session=scope("wr-2")))["status"] == "succeeded"


def test_close_without_cancel_reports_a_running_run_still_running_and_close_is_idempotent(
    api: Api,
) -> None:
    running = api.post_run(node_run("slow", llm={"latency_seconds": 3})).json()["id"]
    until_running(api, running)

    first = closed(api, wait_seconds=0.2)

    assert first["cancelled_run_ids"] == []
    [report] = first["reports"]
    assert report["result"] == "still_running"
    assert report["current_run_id"] == running
    assert report["node_id"] == "node-a"
    assert first["active_sessions"] == 1
    assert run_of(api, running)["status"] == "running"  # not cancelled
    shown = get_workflow_run(api).json()
    assert shown["status"] == "closed"
    assert shown["closed_at"] == first["closed_at"]
    assert [r["run_id"] for r in shown["runs_in_flight"]] == [running]
    assert shown["runs_in_flight"][0]["node_id"] == "node-a"

    second = closed(api, wait_seconds=20)  # waits for the run, then retires its session

    assert second["closed_at"] == first["closed_at"]
    assert [r["result"] for r in second["reports"]] == ["cleaned"]
    assert second["active_sessions"] == 0
    assert run_of(api, running)["status"] == "succeeded"
    third = closed(api, cancel_in_flight=True)
    assert third["closed_at"] == first["closed_at"]
    assert [r["result"] for r in third["reports"]] == ["already_cleaned"]
    assert third["cancelled_run_ids"] == []


def test_get_shows_status_sessions_and_runs_in_flight(api: Api) -> None:
    done = api.run_to_end(node_run("a"))
    running = api.post_run(
        node_run("b", session=scope(node_id="node-b"), llm={"latency_seconds": 30})
    ).json()["id"]
    until_running(api, running)

    response = get_workflow_run(api)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["workflow_run_id"] == "wr-1"
    assert body["status"] == "open"
    assert body["closed_at"] is None
    assert body["created_at"] is not None
    assert [(s["node_id"], s["status"]) for s in body["sessions"]] == [
        ("node-b", "active"),
        ("node-a", "active"),
    ]
    assert body["sessions"][0]["current_run_id"] == running
    assert body["sessions"][1]["current_run_id"] is None
    assert body["sessions"][1]["last_run_id"] == done["id"]
    assert body["sessions"][1]["binding_id"] == "binding-1"
    assert body["runs_in_flight"] == [
        {
            "run_id": running,
            "status": "running",
            "purpose": "agent",
            "session_id": body["sessions"][0]["session_id"],
            "node_id": "node-b",
        }
    ]
    assert body["agent_versions"] == []
    paged = api.client.get(
        "/v1/workflow-runs/wr-1", params={"limit": 1}, headers=api.headers()
    ).json()
    assert [s["node_id"] for s in paged["sessions"]] == ["node-b"]
    rest = api.client.get(
        "/v1/workflow-runs/wr-1", params={"cursor": paged["next_cursor"]}, headers=api.headers()
    ).json()
    assert [s["node_id"] for s in rest["sessions"]] == ["node-a"]
    assert rest["runs_in_flight"] == []
    assert rest["next_cursor"] is None
    api.client.post(f"/v1/runs/{running}/cancel", headers=api.headers())


def test_an_unknown_or_another_tenants_workflow_run_is_404(api: Api) -> None:
    api.run_to_end(node_run("a"))
    other = create_key(api.database_url, "t2").key

    unknown = get_workflow_run(api, "wr-never")
    foreign = get_workflow_run(api, "wr-1", key=other)

    for response in (unknown, foreign):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "workflow_run_not_found"
    # closing "wr-1" as the other tenant seals only that tenant's own (empty) workflow run
    theirs = closed_as(api, other)
    assert theirs["reports"] == []
    assert get_workflow_run(api).json()["status"] == "open"
    assert [row["status"] for row in sessions(api)] == ["active"]
    assert api.run_to_end(node_run("b"))["status"] == "succeeded"


def closed_as(api: Api, key: str) -> dict[str, Any]:
    response = close(api, key=key)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_closing_a_workflow_run_never_seen_seals_it(api: Api) -> None:
    report = closed(api, "wr-later")

    assert report["reports"] == []
    assert report["active_sessions"] == 0
    assert get_workflow_run(api, "wr-later").json()["status"] == "closed"
    late = api.post_run(node_run("late", session=scope("wr-later")))
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "workflow_run_closed"


def test_a_reader_key_may_read_but_not_close(api: Api) -> None:
    api.run_to_end(node_run("a"))
    reader = create_key(api.database_url, "t1", ApiKeyRole.READER).key

    refused = close(api, key=reader)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    shown = get_workflow_run(api, key=reader)
    assert shown.status_code == 200
    assert shown.json()["status"] == "open"


def test_bad_close_bodies_are_422_and_change_nothing(api: Api) -> None:
    api.run_to_end(node_run("a"))
    bad_bodies: list[dict[str, Any]] = [
        {"wait_seconds": "5"},
        {"wait_seconds": True},
        {"wait_seconds": -1},
        {"wait_seconds": 601},
        {"cancel_in_flight": "yes"},
        {"cancel_in_flight": 1},
        {"limit": 0},
        {"limit": 501},
        {"limit": 1.5},
        {"unknown": 1},
    ]
    for body in bad_bodies:
        response = close(api, **body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == "request_invalid"
    assert get_workflow_run(api).json()["status"] == "open"
    assert [row["status"] for row in sessions(api)] == ["active"]
    too_long = close(api, "w" * 65)
    assert too_long.status_code == 422
    bad_cursor = close(api, cursor="not-a-cursor!")
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["error"]["code"] == "invalid_cursor"


def test_close_pages_through_the_sessions(api: Api) -> None:
    ids = {
        api.run_to_end(node_run("x", session=scope(node_id=f"n{i}")))["session_id"]
        for i in range(3)
    }

    first = closed(api, limit=2)
    second = closed(api, limit=2, cursor=first["next_cursor"])

    assert len(first["reports"]) == 2
    assert first["active_sessions"] == 1
    assert second["next_cursor"] is None
    assert {r["session_id"] for r in first["reports"] + second["reports"]} == ids
    assert second["active_sessions"] == 0


def test_runs_racing_a_close_are_either_refused_or_cancelled_and_cleaned(
    api_factory: ApiFactory,
) -> None:
    # No worker: accepted runs stay queued until the close cancels them.
    api = api_factory(run_worker=False)
    barrier = threading.Barrier(9)

    def post(index: int) -> Any:
        barrier.wait()
        if index == 0:
            return close(api, cancel_in_flight=True, wait_seconds=10)
        return api.post_run(node_run("x", session=scope(node_id=f"n{index}")))

    with ThreadPoolExecutor(max_workers=9) as pool:
        responses = list(pool.map(post, range(9)))

    assert responses[0].status_code == 200, responses[0].text
    accepted = [r.json()["id"] for r in responses[1:] if r.status_code == 202]
    refused = [r for r in responses[1:] if r.status_code != 202]
    assert all(r.status_code == 409 for r in refused), [r.text for r in refused]
    assert sorted(responses[0].json()["cancelled_run_ids"]) == sorted(accepted)
    assert {run_of(api, run_id)["status"] for run_id in accepted} <= {"cancelled"}
    assert {row["status"] for row in sessions(api)} <= {"cleaned"}
    assert len(sessions(api)) == len(accepted)


def test_a_shutting_down_process_refuses_to_close(api: Api) -> None:
    api.run_to_end(node_run("x"))
    api.client.app.state.strata.accepting = False

    response = close(api)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "shutting_down"
    api.client.app.state.strata.accepting = True
    assert get_workflow_run(api).json()["status"] == "open"


def test_the_retire_report_lists_every_session_with_its_ids(api: Api) -> None:
    first = api.run_to_end(node_run("a"))
    retire(api, first["session_id"])
    api.run_to_end(node_run("b", session=scope(node_id="node-b")))

    response = api.client.post(
        "/v1/sessions/retire", json={"workflow_run_id": "wr-1"}, headers=api.headers()
    )

    reports = by_node(response.json()["reports"])
    assert reports["node-a"]["result"] == "already_cleaned"
    assert reports["node-a"]["last_run_id"] == first["id"]
    assert uuid.UUID(reports["node-a"]["cleanup_run_id"])
    assert reports["node-b"]["result"] == "cleaned"
    assert {r["binding_id"] for r in reports.values()} == {"binding-1"}
    assert {r["agent_id"] for r in reports.values()} == {"agent-1"}
