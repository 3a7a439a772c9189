"""Authentication, tenancy, reading and listing runs."""

from __future__ import annotations

import uuid

from tests.api_fixtures import Api, create_key
from tests.runs.bodies import chat


def test_requests_without_a_key_are_401(api: Api) -> None:
    response = api.client.post("/v1/runs", json=chat())

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_requests_with_an_unknown_key_are_401(api: Api) -> None:
    response = api.client.get("/v1/runs", headers=api.headers("sk-strata-wrong"))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_another_tenants_run_is_404(api: Api) -> None:
    run = api.run_to_end(chat())
    other = create_key(api.database_url, "t2").key

    for method, path in [
        ("GET", f"/v1/runs/{run['id']}"),
        ("GET", f"/v1/runs/{run['id']}/events"),
        ("GET", f"/v1/runs/{run['id']}/wait"),
        ("POST", f"/v1/runs/{run['id']}/cancel"),
    ]:
        response = api.client.request(method, path, headers=api.headers(other))
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "run_not_found"
    assert api.client.get("/v1/runs", headers=api.headers(other)).json()["items"] == []


def test_an_unknown_run_is_404(api: Api) -> None:
    response = api.client.get(f"/v1/runs/{uuid.uuid4()}", headers=api.headers())

    assert response.status_code == 404


def test_a_created_run_is_queued_and_readable(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(run_worker=False)
    created = api.post_run(chat(metadata={"ticket": 7}))

    assert created.status_code == 202
    body = created.json()
    assert body["status"] == "queued"
    assert body["metadata"] == {"ticket": 7}
    fetched = api.client.get(f"/v1/runs/{body['id']}", headers=api.headers()).json()
    assert fetched["status"] == "queued"
    assert fetched["output"] is None and fetched["session_snapshot"] is None


def test_runs_are_listed_newest_first_with_a_status_filter_and_cursor(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(run_worker=False)
    ids = [api.post_run(chat()).json()["id"] for _ in range(5)]
    api.client.post(f"/v1/runs/{ids[0]}/cancel", headers=api.headers())

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2, "status": "queued"}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/v1/runs", params=params, headers=api.headers()).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids[1:]))

    cancelled = api.client.get(
        "/v1/runs", params={"status": "cancelled"}, headers=api.headers()
    ).json()
    assert [item["id"] for item in cancelled["items"]] == [ids[0]]


def test_a_malformed_cursor_is_400(api: Api) -> None:
    response = api.client.get("/v1/runs", params={"cursor": "%%%"}, headers=api.headers())

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_shutting_down_api_refuses_new_runs_with_503(api: Api) -> None:
    api.client.app.state.strata.accepting = False  # what SIGTERM does first (see app/cli.py)

    refused = api.post_run(chat())
    listed = api.client.get("/v1/runs", headers=api.headers())

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["Retry-After"] == "1"
    assert listed.status_code == 200  # reads still work while open requests finish
    assert listed.json()["items"] == []


def test_default_timings_detect_a_dead_worker_within_30_seconds() -> None:
    from app.config import Settings

    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    # a lease lapses `lease_seconds` after the last heartbeat; a sweep notices it at most
    # `sweep_seconds` later
    assert defaults.lease_seconds + defaults.sweep_seconds <= 30
    assert defaults.heartbeat_seconds * 3 <= defaults.lease_seconds
