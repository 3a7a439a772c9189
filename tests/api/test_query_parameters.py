"""A query parameter a route does not declare is 422 `unknown_query_parameter`, never ignored.

Checked on every list route and on routes that take no query at all, with nothing changed by a
refused write; the parameters routes do declare keep working; the seed protocol's prefix ignores
unknown ones like the seed server; the documentation pages and the operator page still load.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from app.api.edge import StrataRoute
from tests.agents.support import create_agent, error_code, job, put_binding, roster_binding
from tests.api_fixtures import Api
from tests.runs.bodies import chat


def assert_unknown(response: Any, *names: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "unknown_query_parameter"
    assert error["details"]["parameters"] == sorted(names)
    for name in names:
        assert repr(name) in error["message"]
    return error


@pytest.fixture
def ids(api: Api) -> dict[str, str]:
    run = api.run_to_end(chat())
    agent = create_agent(api)
    created = put_binding(api, roster_binding(agent["id"]))
    assert created.status_code == 201, created.text
    key = api.client.get("/v1/keys", headers=api.headers()).json()["items"][0]
    return {"run": run["id"], "agent": agent["id"], "key": key["id"]}


LIST_ROUTES = [
    "/v1/runs",
    "/v1/runs/{run}/events",
    "/v1/sessions",
    "/v1/agents",
    "/v1/agents/{agent}/versions",
    "/v1/agents/{agent}/revisions",
    "/v1/workflows/wf-1/versions/draft/bindings",
    "/v1/keys",
]


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_an_unknown_query_parameter_on_a_list_route_is_422(
    api: Api, ids: dict[str, str], path: str
) -> None:
    url = path.format(**ids)

    response = api.client.get(url, params={"workflow_run": "W1"}, headers=api.headers())

    error = assert_unknown(response, "workflow_run")
    assert "limit" in error["details"]["accepted"] or path.endswith(("bindings", "keys"))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/runs/{run}",
        "/v1/agents/{agent}",
        "/v1/agents/{agent}/versions/1",
        "/v1/workflows/wf-1/versions/draft/nodes/node-1/binding",
        "/healthz",
        "/readyz",
    ],
)
def test_an_unknown_query_parameter_on_a_read_route_is_422(
    api: Api, ids: dict[str, str], path: str
) -> None:
    response = api.client.get(path.format(**ids), params={"x": "1"}, headers=api.headers())

    error = assert_unknown(response, "x")
    assert error["details"]["accepted"] == []


def test_every_unknown_name_is_listed_and_the_accepted_ones_are_named(api: Api) -> None:
    response = api.client.get(
        "/v1/runs?status=succeeded&limit=5&workflowRunId=W&b=&a=1&a=2", headers=api.headers()
    )

    error = assert_unknown(response, "a", "b", "workflowRunId")
    assert error["details"]["accepted"] == [
        "created_after",
        "created_before",
        "cursor",
        "limit",
        "node_id",
        "purpose",
        "session_id",
        "status",
        "workflow_run_id",
    ]


def test_a_write_with_an_unknown_query_parameter_is_refused_and_changes_nothing(
    api: Api, ids: dict[str, str]
) -> None:
    before = api.client.get("/v1/runs", headers=api.headers()).json()["items"]

    run = api.client.post("/v1/runs?dry_run=true", json=chat(), headers=api.headers())
    cancel = api.client.post(f"/v1/runs/{ids['run']}/cancel?force=1", headers=api.headers())
    agent = api.client.post(
        "/v1/agents?validate=false",
        json={"name": "other", "scope": "roster", "config": {}},
        headers=api.headers(),
    )
    binding = api.client.put(
        "/v1/workflows/wf-1/versions/draft/nodes/node-2/binding?upsert=1",
        json=roster_binding(ids["agent"], node_job_config=job()),
        headers=api.headers(),
    )

    for response, name in [
        (run, "dry_run"),
        (cancel, "force"),
        (agent, "validate"),
        (binding, "upsert"),
    ]:
        assert_unknown(response, name)
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == before
    agents = api.client.get("/v1/agents", headers=api.headers()).json()["items"]
    assert [item["name"] for item in agents] == ["researcher"]
    missing = api.client.get(
        "/v1/workflows/wf-1/versions/draft/nodes/node-2/binding", headers=api.headers()
    )
    assert error_code(missing) == "binding_not_found"


def test_declared_parameters_still_work(api: Api, ids: dict[str, str]) -> None:
    paths: dict[str, dict[str, Any]] = {
        "/v1/runs": {"status": "succeeded", "limit": 1},
        f"/v1/runs/{ids['run']}/events": {"after": 1, "limit": 2},
        f"/v1/runs/{ids['run']}/wait": {"timeout_seconds": 1},
        "/v1/sessions": {"status": "active", "workflow_run_id": "W", "node_id": "n"},
        "/v1/agents": {"scope": "roster", "status": "active", "q": "res", "limit": 5},
        f"/v1/agents/{ids['agent']}/versions": {"before": 5, "limit": 1},
        f"/v1/agents/{ids['agent']}/revisions": {"before": 5, "limit": 1},
    }
    for path, params in paths.items():
        response = api.client.get(path, params=params, headers=api.headers())
        assert response.status_code == 200, (path, response.text)
    found = api.client.get("/v1/agents", params={"q": "res"}, headers=api.headers())
    assert [item["name"] for item in found.json()["items"]] == ["researcher"]


def test_the_event_stream_takes_after_and_the_polyfills_last_event_id(
    api: Api, ids: dict[str, str]
) -> None:
    events = api.events(ids["run"])
    path = f"/v1/runs/{ids['run']}/events/stream"

    def seqs(**params: Any) -> list[int]:
        response = api.client.get(path, params=params, headers=api.headers())
        assert response.status_code == 200, response.text
        return [int(line[4:]) for line in response.text.splitlines() if line.startswith("id: ")]

    assert seqs() == [event["seq"] for event in events]
    assert seqs(after=1) == [event["seq"] for event in events[1:]]
    assert seqs(lastEventId="2") == [event["seq"] for event in events[2:]]
    bad = api.client.get(path, params={"lastEventId": "x"}, headers=api.headers())
    assert error_code(bad) == "invalid_last_event_id"
    assert_unknown(api.client.get(path, params={"since": "1"}, headers=api.headers()), "since")


def test_the_seed_protocol_ignores_unknown_query_parameters_like_the_seed_server(
    api: Api, ids: dict[str, str]
) -> None:
    base = "/compat/agent-backend/runs"

    status = api.client.get(f"{base}/{ids['run']}", params={"x": 1}, headers=api.headers())
    page = api.client.get(
        f"{base}/{ids['run']}/events",
        params={"after": "0-0", "limit": 2, "extra": "y"},
        headers=api.headers(),
    )
    bad_limit = api.client.get(
        f"{base}/{ids['run']}/events", params={"limit": 0}, headers=api.headers()
    )

    assert status.status_code == 200, status.text
    assert status.json()["run_id"] == ids["run"]
    assert page.status_code == 200, page.text
    assert len(page.json()["events"]) == 2
    assert bad_limit.status_code == 422
    assert "detail" in bad_limit.json()  # the protocol's own error shape


@pytest.mark.parametrize("path", ["/ui", "/docs", "/redoc", "/openapi.json"])
def test_documentation_and_the_operator_page_still_load(api: Api, path: str) -> None:
    plain = api.client.get(path)
    with_query = api.client.get(path, params={"v": "1"})

    assert plain.status_code == 200, plain.text
    assert with_query.status_code == 200, with_query.text


def test_each_routes_accepted_names_are_the_query_parameters_its_openapi_documents(
    api: Api,
) -> None:
    """The accepted names are read from the route's own dependencies when it is built; the
    OpenAPI document is built from the route as included in the app (app and router
    dependencies too). Equal sets mean no parameter is parsed but refused, or the reverse."""
    document = api.client.get("/openapi.json").json()["paths"]
    checked = 0
    for context in iter_route_contexts(api.client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if not isinstance(route, StrataRoute) or not route.include_in_schema:
            continue
        for method in context.methods or []:
            operation = document[str(context.path)][method.lower()]
            documented = {
                parameter["name"]
                for parameter in operation.get("parameters", [])
                if parameter["in"] == "query"
            }
            assert documented == set(route.query_parameters), (method, context.path)
            checked += 1
    assert checked > 30
