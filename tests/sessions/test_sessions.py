"""Runtime sessions: resume per scope, retire on failure, wait-and-retire, one run at a time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.api_fixtures import Api, ApiFactory, create_key
from tests.layer_types import RECORDS
from tests.runs.bodies import chat, layer


def scope(workflow_run_id: str = "wr-1", node_id: str = "node-a") -> dict[str, Any]:
    return {
        "app_id": "app-1",
        "workflow_id": "wf-1",
        "workflow_run_id": workflow_run_id,
        "node_id": node_id,
        "node_execution_id": "exec-1",
        "binding_id": "binding-1",
        "agent_id": "agent-1",
        "agent_config_snapshot_id": "snap-1",
    }


def node_run(user: str, *, label: str | None = None, **extra: Any) -> dict[str, Any]:
    body = chat(user, session=extra.pop("session", scope()), **extra)
    if label is not None:
        body["composition"]["layers"].insert(1, layer("rec", "test.recording", {"label": label}))
    return body


def sessions(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.client.get("/v1/sessions", params=params, headers=api.headers())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def retire(api: Api, session_id: str, wait_seconds: float = 10) -> dict[str, Any]:
    response = api.client.post(
        f"/v1/sessions/{session_id}/retire",
        json={"wait_seconds": wait_seconds},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()["reports"][0]
    return report


def test_a_second_run_of_a_node_resumes_the_sessions_snapshot(api: Api) -> None:
    first = api.run_to_end(node_run("first question"))
    second = api.run_to_end(node_run("second question"))

    assert first["output"] == "echo #1: first question"
    assert second["output"] == "echo #2: second question"
    assert first["session_id"] == second["session_id"]
    [row] = sessions(api, workflow_run_id="wr-1")
    assert row["status"] == "active"
    assert row["backend_run_id"] == second["id"]
    assert row["current_run_id"] is None
    assert row["session_snapshot"] == second["session_snapshot"]
    assert [spec["name"] for spec in row["composition_layer_specs"]] == ["prompt", "history"]


def test_another_node_of_the_same_workflow_run_has_its_own_session(api: Api) -> None:
    api.run_to_end(node_run("a"))
    other = api.run_to_end(node_run("b", session=scope(node_id="node-b")))

    assert other["output"] == "echo #1: b"
    assert len(sessions(api, workflow_run_id="wr-1")) == 2


def test_a_failed_run_retires_the_session_and_the_next_run_starts_fresh(api: Api) -> None:
    api.run_to_end(node_run("remember me"))
    failed = api.run_to_end(
        node_run("slow", llm={"latency_seconds": 5}, limits={"timeout_seconds": 0.1})
    )
    assert failed["status"] == "failed"
    [row] = sessions(api)
    assert row["status"] == "cleaned"
    assert row["cleaned_at"] is not None

    fresh = api.run_to_end(node_run("hello again"))

    assert fresh["output"] == "echo #1: hello again"
    [row] = sessions(api)
    assert row["status"] == "active"


def test_a_failed_session_run_releases_its_layers(api: Api) -> None:
    label = "failed-release"
    RECORDS.pop(label, None)
    api.run_to_end(
        node_run("x", label=label, llm={"latency_seconds": 5}, limits={"timeout_seconds": 0.1})
    )

    assert RECORDS[label] == ["open", "create", "delete", "close"]


def test_an_inline_snapshot_that_differs_from_the_sessions_is_422(api: Api) -> None:
    first = api.run_to_end(node_run("one"))
    other = api.run_to_end(chat("unrelated"))

    conflicting = node_run("two", session_snapshot=other["session_snapshot"])
    response = api.post_run(conflicting)
    same = api.post_run(node_run("two", session_snapshot=first["session_snapshot"]))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "session_snapshot_conflict"
    assert same.status_code == 202


def test_concurrent_runs_on_one_session_accept_exactly_one(api_factory: ApiFactory) -> None:
    api = api_factory(run_worker=False)
    barrier = threading.Barrier(6)

    def post(_: int) -> Any:
        barrier.wait()
        return api.post_run(node_run("hi"))

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, range(6)))

    codes = sorted(response.status_code for response in responses)
    assert codes == [202] + [409] * 5
    busy = [r.json()["error"] for r in responses if r.status_code == 409]
    assert {error["code"] for error in busy} == {"session_busy"}
    assert len(api.client.get("/v1/runs", headers=api.headers()).json()["items"]) == 1


def test_retire_waits_for_the_run_in_flight_then_cleans_up(api: Api) -> None:
    label = "retire-wait"
    RECORDS.pop(label, None)
    run_id = api.post_run(node_run("slow", label=label, llm={"latency_seconds": 0.8})).json()["id"]
    session_id = _session_of(api, run_id)

    started = time.monotonic()
    report = retire(api, session_id, wait_seconds=10)

    assert report["result"] == "cleaned"
    assert time.monotonic() - started >= 0.3
    assert api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).json()["status"] == (
        "succeeded"
    )
    cleanup = api.client.get(f"/v1/runs/{report['cleanup_run_id']}", headers=api.headers()).json()
    assert cleanup["purpose"] == "cleanup"
    assert cleanup["status"] == "succeeded"
    assert RECORDS[label] == [
        "open",
        "create",
        "suspend",
        "close",
        "open",
        "resume",
        "delete",
        "close",
    ]
    row = api.client.get(f"/v1/sessions/{session_id}", headers=api.headers()).json()
    assert row["status"] == "cleaned"
    assert row["cleanup_run_id"] == report["cleanup_run_id"]

    assert retire(api, session_id)["result"] == "already_cleaned"


def test_retire_with_a_short_wait_reports_still_running_and_keeps_the_session(api: Api) -> None:
    run_id = api.post_run(node_run("slow", llm={"latency_seconds": 3})).json()["id"]
    session_id = _session_of(api, run_id)

    report = retire(api, session_id, wait_seconds=0.2)

    assert report["result"] == "still_running"
    row = api.client.get(f"/v1/sessions/{session_id}", headers=api.headers()).json()
    assert row["status"] == "active"
    assert row["current_run_id"] == run_id
    assert api.wait(run_id)["status"] == "succeeded"  # the run was not disturbed


def test_a_failing_delete_hook_reports_cleanup_failed_and_keeps_the_session_active(
    api: Api,
) -> None:
    label = "retire-fails"
    RECORDS.pop(label, None)
    body = node_run("x")
    body["composition"]["layers"].insert(
        1, layer("rec", "test.recording", {"label": label, "fail_on": "delete"})
    )
    run = api.run_to_end(body)

    report = retire(api, run["session_id"])

    assert report["result"] == "cleanup_failed"
    assert "delete failed on purpose" in report["reason"]
    row = api.client.get(f"/v1/sessions/{run['session_id']}", headers=api.headers()).json()
    assert row["status"] == "active"
    assert row["current_run_id"] is None
    assert RECORDS[label].count("delete") == 1


def test_retire_by_workflow_run_retires_each_active_session(api: Api) -> None:
    api.run_to_end(node_run("a"))
    api.run_to_end(node_run("b", session=scope(node_id="node-b")))
    api.run_to_end(node_run("c", session=scope(workflow_run_id="wr-other")))

    response = api.client.post(
        "/v1/sessions/retire",
        json={"workflow_run_id": "wr-1", "wait_seconds": 5},
        headers=api.headers(),
    )

    assert response.status_code == 200
    assert sorted(r["result"] for r in response.json()["reports"]) == ["cleaned", "cleaned"]
    assert {row["status"] for row in sessions(api, workflow_run_id="wr-1")} == {"cleaned"}
    assert [row["status"] for row in sessions(api, workflow_run_id="wr-other")] == ["active"]
    again = api.client.post(
        "/v1/sessions/retire", json={"workflow_run_id": "wr-1"}, headers=api.headers()
    )
    # every session of the workflow run is reported, also those retired before
    reports = again.json()["reports"]
    assert sorted(r["result"] for r in reports) == ["already_cleaned", "already_cleaned"]
    assert sorted(r["node_id"] for r in reports) == ["node-a", "node-b"]
    assert again.json()["next_cursor"] is None


def test_sessions_are_listed_with_filters_and_pages_and_scoped_to_the_tenant(api: Api) -> None:
    for node in ("n1", "n2", "n3"):
        api.run_to_end(node_run("x", session=scope(node_id=node)))
    first = api.client.get("/v1/sessions", params={"limit": 2}, headers=api.headers()).json()
    rest = api.client.get(
        "/v1/sessions", params={"cursor": first["next_cursor"]}, headers=api.headers()
    ).json()

    assert [r["node_id"] for r in first["items"] + rest["items"]] == ["n3", "n2", "n1"]
    assert rest["next_cursor"] is None
    assert sessions(api, status="cleaned") == []

    other = create_key(api.database_url, "t2").key
    session_id = first["items"][0]["id"]
    assert (
        api.client.get(f"/v1/sessions/{session_id}", headers=api.headers(other)).status_code == 404
    )
    retired = api.client.post(f"/v1/sessions/{session_id}/retire", headers=api.headers(other))
    assert retired.status_code == 404
    assert api.client.get("/v1/sessions", headers=api.headers(other)).json()["items"] == []


def _session_of(api: Api, run_id: str) -> str:
    run = api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).json()
    session_id: str = run["session_id"]
    return session_id


def test_concurrent_retries_of_one_session_run_replay_it_and_leave_the_session_consistent(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(run_worker=False)
    barrier = threading.Barrier(6)
    headers = {**api.headers(), "Idempotency-Key": "wr-1:exec-1:attempt-1"}

    def post(_: int) -> Any:
        barrier.wait()
        return api.client.post("/v1/runs", json=node_run("hi"), headers=headers)

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, range(6)))

    assert sorted(r.status_code for r in responses) == [200] * 5 + [202]
    run_ids = {r.json()["id"] for r in responses}
    assert len(run_ids) == 1
    [row] = sessions(api)
    assert row["current_run_id"] == run_ids.pop()
