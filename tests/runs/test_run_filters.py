"""`GET /v1/runs` and `GET /v1/sessions` filters, alone and combined, paged with cursors.

`workflow_run_id` and `node_id` are the scope of the run's runtime session; a run posted without
a session has neither. The created range is half-open (`created_after` inclusive,
`created_before` exclusive) and needs times with an offset.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_fixtures import Api
from tests.runs.bodies import chat
from tests.sessions.test_sessions import retire, scope, sessions


def list_all(api: Api, path: str = "/v1/runs", **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following `next_cursor` with the same filters (`limit` 2)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.client.get(path, params=query, headers=api.headers())
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor never ended")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


@pytest.fixture
def runs(api: Api) -> dict[str, dict[str, Any]]:
    """Seven runs, oldest first: three on workflow run W1 (node a twice, node b), two on W2
    (node a, node b), one without a session, one that fails on W2's node b."""
    made: dict[str, dict[str, Any]] = {}
    plan = [
        ("w1a1", scope("W1", "a")),
        ("w1a2", scope("W1", "a")),
        ("w1b", scope("W1", "b")),
        ("w2a", scope("W2", "a")),
        ("w2b", scope("W2", "b")),
        ("plain", None),
    ]
    for name, session in plan:
        body = chat(name, **({"session": session} if session else {}))
        made[name] = api.run_to_end(body)
    # fails with `run_limit_exceeded`: its model answers long after the run's time limit
    failing = chat(
        "slow",
        llm={"latency_seconds": 60},
        limits={"timeout_seconds": 0.2},
        session=scope("W2", "b"),
    )
    made["w2b_failed"] = api.run_to_end(failing)
    assert made["w2b_failed"]["status"] == "failed", made["w2b_failed"]
    return made


def newest_first(runs: dict[str, dict[str, Any]], *names: str) -> list[str]:
    return [runs[name]["id"] for name in reversed(names)]


def test_workflow_run_id_returns_only_that_workflow_runs_runs_across_pages(
    api: Api, runs: dict[str, dict[str, Any]]
) -> None:
    assert ids(list_all(api, workflow_run_id="W1")) == newest_first(runs, "w1a1", "w1a2", "w1b")
    assert ids(list_all(api, workflow_run_id="W2")) == newest_first(
        runs, "w2a", "w2b", "w2b_failed"
    )
    assert list_all(api, workflow_run_id="W3") == []
    # unfiltered: every run, the plain one included
    assert len(list_all(api)) == 7


def test_node_id_alone_spans_workflow_runs_and_combines_with_workflow_run_id(
    api: Api, runs: dict[str, dict[str, Any]]
) -> None:
    assert ids(list_all(api, node_id="a")) == newest_first(runs, "w1a1", "w1a2", "w2a")
    assert ids(list_all(api, node_id="b", workflow_run_id="W2")) == newest_first(
        runs, "w2b", "w2b_failed"
    )
    assert list_all(api, node_id="c") == []


def test_session_id_and_status_filter_and_combine(
    api: Api, runs: dict[str, dict[str, Any]]
) -> None:
    w1a_session = runs["w1a1"]["session_id"]
    assert runs["w1a2"]["session_id"] == w1a_session
    assert ids(list_all(api, session_id=w1a_session)) == newest_first(runs, "w1a1", "w1a2")

    assert ids(list_all(api, status="failed")) == [runs["w2b_failed"]["id"]]
    assert ids(list_all(api, workflow_run_id="W2", status="succeeded")) == newest_first(
        runs, "w2a", "w2b"
    )
    assert list_all(api, workflow_run_id="W1", status="failed") == []
    assert ids(
        list_all(api, workflow_run_id="W2", node_id="b", status=["failed", "succeeded"])
    ) == newest_first(runs, "w2b", "w2b_failed")


def test_the_created_range_is_half_open_and_combines_with_other_filters(
    api: Api, runs: dict[str, dict[str, Any]]
) -> None:
    start = runs["w1a2"]["created_at"]
    end = runs["w2b"]["created_at"]

    window = list_all(api, created_after=start, created_before=end)
    since = list_all(api, created_after=start)
    until = list_all(api, created_before=end)

    assert ids(window) == newest_first(runs, "w1a2", "w1b", "w2a")
    assert ids(since) == newest_first(runs, "w1a2", "w1b", "w2a", "w2b", "plain", "w2b_failed")
    assert ids(until) == newest_first(runs, "w1a1", "w1a2", "w1b", "w2a")
    assert ids(list_all(api, created_after=start, created_before=end, node_id="a")) == (
        newest_first(runs, "w1a2", "w2a")
    )


def test_times_with_another_offset_mean_the_same_instant(
    api: Api, runs: dict[str, dict[str, Any]]
) -> None:
    from datetime import datetime, timedelta, timezone

    start = datetime.fromisoformat(runs["w1b"]["created_at"])
    shifted = start.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()

    assert ids(list_all(api, created_after=shifted)) == ids(
        list_all(api, created_after=runs["w1b"]["created_at"])
    )
    assert runs["w1b"]["id"] in ids(list_all(api, created_after=shifted))


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"created_after": "2026-12-01T10:00:00"}, "request_invalid"),  # naive
        ({"created_before": "2026-12-01"}, "request_invalid"),  # a date, no time or offset
        ({"created_after": "yesterday"}, "request_invalid"),
        ({"created_before": "0.5"}, "request_invalid"),  # pydantic would read Unix seconds
        ({"created_before": "1733220000"}, "request_invalid"),
        ({"created_after": "2026-12-01T10:00:00 00:00"}, "request_invalid"),  # an unescaped +
        ({"created_after": "0001-01-01T00:00:00+01:00"}, "request_invalid"),  # before year 1 UTC
        (
            {"created_after": "2026-12-02T00:00:00Z", "created_before": "2026-12-01T00:00:00Z"},
            "invalid_time_range",
        ),
        ({"status": "sleeping"}, "request_invalid"),
        ({"session_id": "not-a-uuid"}, "request_invalid"),
        ({"workflow_run_id": "x" * 65}, "request_invalid"),
        ({"purpose": "fun"}, "request_invalid"),
    ],
)
def test_bad_filter_values_are_422(api: Api, params: dict[str, str], code: str) -> None:
    response = api.client.get("/v1/runs", params=params, headers=api.headers())

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_purpose_separates_a_retires_cleanup_runs(api: Api) -> None:
    run = api.run_to_end(chat("hi", session=scope("W9", "a")))
    report = retire(api, run["session_id"])
    assert report["result"] == "cleaned", report

    cleanup = list_all(api, workflow_run_id="W9", purpose="cleanup")
    agent = list_all(api, workflow_run_id="W9", purpose="agent")

    assert ids(cleanup) == [report["cleanup_run_id"]]
    assert ids(agent) == [run["id"]]


def test_sessions_filter_by_node_id_alone_and_with_the_workflow_run(
    api: Api, runs: dict[str, dict[str, Any]]
) -> None:
    node_a = sessions(api, node_id="a")
    node_b_w2 = sessions(api, node_id="b", workflow_run_id="W2")

    assert {(row["workflow_run_id"], row["node_id"]) for row in node_a} == {
        ("W1", "a"),
        ("W2", "a"),
    }
    assert [(row["workflow_run_id"], row["node_id"]) for row in node_b_w2] == [("W2", "b")]
    paged = list_all(api, "/v1/sessions", node_id="a")
    assert ids(paged) == ids(node_a)
