"""Event log, cancel and idempotency through HTTP."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.api_fixtures import Api, ApiFactory
from tests.layer_types import RECORDS
from tests.runs.bodies import chat, layer

TERMINAL = {"run_succeeded", "run_paused", "run_failed", "run_cancelled"}


def _assert_log_is_well_formed(events: list[dict[str, Any]]) -> None:
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_queued"
    assert [event["type"] in TERMINAL for event in events].count(True) == 1
    assert events[-1]["type"] in TERMINAL


def test_events_are_ordered_gap_free_and_end_with_one_terminal_event(api: Api) -> None:
    run = api.run_to_end(chat("tell me", llm={"reply": "x" * 50, "stream_chunk_chars": 5}))
    events = api.events(run["id"])

    _assert_log_is_well_formed(events)
    assert [e["type"] for e in events][:2] == ["run_queued", "run_started"]
    text = "".join(e["data"]["delta"] for e in events if e["type"] == "agent_message_delta")
    assert text == "x" * 50
    # ten 5-character chunks arrive within the flush window: coalesced into fewer events
    assert sum(1 for e in events if e["type"] == "agent_message_delta") < 10
    assert events[-1]["data"]["output"] == "x" * 50
    assert events[-1]["data"]["session_snapshot"] == run["session_snapshot"]


def test_event_pages_use_an_exclusive_cursor(api: Api) -> None:
    run = api.run_to_end(chat())
    events = api.events(run["id"])
    path = f"/v1/runs/{run['id']}/events"

    first = api.client.get(path, params={"limit": 2}, headers=api.headers()).json()
    second = api.client.get(
        path, params={"after": first["next_cursor"], "limit": 500}, headers=api.headers()
    ).json()
    end = api.client.get(
        path, params={"after": second["next_cursor"]}, headers=api.headers()
    ).json()

    assert [e["seq"] for e in first["items"]] == [1, 2]
    assert first["terminal"] is False
    assert first["items"] + second["items"] == events
    assert second["terminal"] is True
    assert end == {"items": [], "next_cursor": second["next_cursor"], "terminal": False}


def test_event_limit_outside_1_to_500_is_422(api: Api) -> None:
    run = api.run_to_end(chat())
    for limit in (0, 501):
        response = api.client.get(
            f"/v1/runs/{run['id']}/events", params={"limit": limit}, headers=api.headers()
        )
        assert response.status_code == 422


def test_cancelling_a_queued_run_is_immediate(api_factory: ApiFactory) -> None:
    api = api_factory(run_worker=False)
    run_id = api.post_run(chat()).json()["id"]

    response = api.client.post(
        f"/v1/runs/{run_id}/cancel", json={"reason": "not needed"}, headers=api.headers()
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["error_type"] == "cancelled"
    assert body["cancel_reason"] == "not needed"
    events = api.events(run_id)
    _assert_log_is_well_formed(events)
    assert events[-1]["type"] == "run_cancelled"


def test_cancelling_a_running_run_exits_every_layer_and_keeps_the_snapshot(api: Api) -> None:
    label = "cancel-running"
    RECORDS.pop(label, None)
    body = chat(llm={"latency_seconds": 30})
    body["composition"]["layers"].insert(1, layer("rec", "test.recording", {"label": label}))
    run_id = api.post_run(body).json()["id"]
    _wait_for_status(api, run_id, "running")

    response = api.client.post(f"/v1/runs/{run_id}/cancel", headers=api.headers())
    assert response.status_code == 200
    assert response.json()["status"] in {"cancelling", "cancelled"}

    run = api.wait(run_id, timeout=10)
    assert run["status"] == "cancelled"
    assert run["reason"] == "cancel_requested"
    assert {e["lifecycle_state"] for e in run["session_snapshot"]["layers"]} == {"suspended"}
    assert RECORDS[label] == ["open", "create", "suspend", "close"]
    again = api.client.post(f"/v1/runs/{run_id}/cancel", headers=api.headers())
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    events = api.events(run_id)
    _assert_log_is_well_formed(events)
    assert "run_cancelling" in [e["type"] for e in events]


def test_cancelling_a_finished_run_is_409(api: Api) -> None:
    run = api.run_to_end(chat())

    response = api.client.post(f"/v1/runs/{run['id']}/cancel", headers=api.headers())

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_already_finished"
    assert api.events(run["id"])[-1]["type"] == "run_succeeded"


def test_a_cancel_racing_a_finishing_run_ends_with_exactly_one_terminal_event(api: Api) -> None:
    outcomes = set()
    for attempt in range(20):
        run_id = api.post_run(chat(llm={"latency_seconds": 0.005 * (attempt % 4)})).json()["id"]
        cancel = api.client.post(f"/v1/runs/{run_id}/cancel", headers=api.headers())
        assert cancel.status_code in (200, 409)
        run = api.wait(run_id)
        events = api.events(run_id)
        _assert_log_is_well_formed(events)
        assert events[-1]["type"] == f"run_{run['status']}"
        if cancel.status_code == 409:
            assert run["status"] == "succeeded"
        else:
            assert run["status"] == "cancelled"
        outcomes.add(run["status"])
    assert "cancelled" in outcomes


def test_the_same_idempotency_key_and_request_returns_the_existing_run(api: Api) -> None:
    headers = {**api.headers(), "Idempotency-Key": "order-42"}
    first = api.client.post("/v1/runs", json=chat(), headers=headers)
    second = api.client.post("/v1/runs", json=chat(), headers=headers)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["idempotency_key"] == "order-42"


def test_the_idempotency_key_in_the_body_works_like_the_header(api: Api) -> None:
    first = api.post_run(chat(idempotency_key="body-key"))
    second = api.post_run(chat(idempotency_key="body-key"))

    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]


def test_the_same_key_with_a_different_request_is_409(api: Api) -> None:
    headers = {**api.headers(), "Idempotency-Key": "k-1"}
    first = api.client.post("/v1/runs", json=chat("one"), headers=headers)
    second = api.client.post("/v1/runs", json=chat("two"), headers=headers)

    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["details"]["run_id"] == first.json()["id"]


def test_idempotency_keys_are_scoped_to_the_tenant(api: Api) -> None:
    from tests.api_fixtures import create_key

    other = create_key(api.database_url, "t2").key
    first = api.client.post(
        "/v1/runs", json=chat(), headers={**api.headers(), "Idempotency-Key": "shared"}
    )
    second = api.client.post(
        "/v1/runs", json=chat(), headers={**api.headers(other), "Idempotency-Key": "shared"}
    )

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]


def test_fifty_concurrent_posts_with_one_key_create_one_run(api_factory: ApiFactory) -> None:
    api = api_factory(run_worker=False)
    headers = {**api.headers(), "Idempotency-Key": "burst"}

    def post(_: int) -> tuple[int, str]:
        response = api.client.post("/v1/runs", json=chat(), headers=headers)
        return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(50)))

    assert {run_id for _, run_id in results} == {results[0][1]}
    assert sorted(code for code, _ in results) == [200] * 49 + [202]
    listed = api.client.get("/v1/runs", headers=api.headers()).json()["items"]
    assert len(listed) == 1


def _wait_for_status(api: Api, run_id: str, status: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).json()["status"]
        if current == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {status}")
