"""The roster through HTTP: create, read, list, rename, archive, names, tenancy, bad configs."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.agents.support import agent_body, create_agent, error_code, get_json, soul
from tests.api_fixtures import Api, create_key


def test_creating_an_agent_answers_201_with_version_1_active(api: Api) -> None:
    response = api.client.post(
        "/v1/agents",
        json=agent_body(
            "researcher",
            description="Finds sources.",
            icon_type="emoji",
            icon="🔎",
            icon_background="#FFEEDD",
            source="imported",
            app_id="app-1",
        ),
        headers=api.headers(),
    )

    assert response.status_code == 201, response.text
    agent = response.json()
    assert agent["name"] == "researcher"
    assert agent["description"] == "Finds sources."
    assert (agent["icon_type"], agent["icon"], agent["icon_background"]) == (
        "emoji",
        "🔎",
        "#FFEEDD",
    )
    assert agent["scope"] == "roster"
    assert agent["source"] == "imported"
    assert agent["app_id"] == "app-1"
    assert agent["status"] == "active"
    assert agent["agent_kind"] == "strata_agent"
    assert agent["active_version"] == 1
    assert agent["active_config_snapshot_id"] is not None
    assert agent["archived_at"] is None
    assert agent["created_by"] is not None

    version = get_json(api, f"/v1/agents/{agent['id']}/versions/1")
    assert version["id"] == agent["active_config_snapshot_id"]
    assert version["is_active"] is True
    assert version["config"]["prompt"]["system_prompt"] == "You are careful."
    assert version["config"]["model"] == {"provider": "test", "model": "test", "settings": None}


def test_an_agent_is_created_with_a_create_version_revision(api: Api) -> None:
    agent = create_agent(api)

    revisions = get_json(api, f"/v1/agents/{agent['id']}/revisions")["items"]

    assert len(revisions) == 1
    assert revisions[0]["revision"] == 1
    assert revisions[0]["operation"] == "create_version"
    assert revisions[0]["previous_snapshot_id"] is None
    assert revisions[0]["current_snapshot_id"] == agent["active_config_snapshot_id"]


def test_source_defaults_to_agent_app(api: Api) -> None:
    assert create_agent(api)["source"] == "agent_app"


def test_get_returns_the_agent_and_an_unknown_id_is_404(api: Api) -> None:
    agent = create_agent(api)

    assert get_json(api, f"/v1/agents/{agent['id']}") == agent
    missing = api.client.get(f"/v1/agents/{uuid.uuid4()}", headers=api.headers())
    assert missing.status_code == 404
    assert error_code(missing) == "agent_not_found"


def test_a_taken_roster_name_is_409_agent_name_taken(api: Api) -> None:
    create_agent(api, "researcher")

    response = api.client.post("/v1/agents", json=agent_body("researcher"), headers=api.headers())

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "agent_name_taken",
        "message": "an active roster agent named 'researcher' already exists",
        "details": {"name": "researcher"},
    }


def test_workflow_only_agents_may_share_names_with_anything(api: Api) -> None:
    create_agent(api, "researcher")

    first = api.client.post(
        "/v1/agents", json=agent_body("researcher", "workflow_only"), headers=api.headers()
    )
    second = api.client.post(
        "/v1/agents", json=agent_body("researcher", "workflow_only"), headers=api.headers()
    )

    assert (first.status_code, second.status_code) == (201, 201)


def test_concurrent_creates_of_one_roster_name_let_exactly_one_win(api: Api) -> None:
    def create(_: int) -> Any:
        return api.client.post("/v1/agents", json=agent_body("popular"), headers=api.headers())

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(create, range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7
    assert {error_code(r) for r in responses if r.status_code == 409} == {"agent_name_taken"}
    listed = get_json(api, "/v1/agents", q="popular")["items"]
    assert len(listed) == 1


def test_archiving_frees_the_roster_name(api: Api) -> None:
    old = create_agent(api, "researcher")

    archived = api.client.post(f"/v1/agents/{old['id']}/archive", headers=api.headers())
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "archived"
    assert archived.json()["archived_at"] is not None
    assert archived.json()["archived_by"] is not None

    new = create_agent(api, "researcher")
    assert new["id"] != old["id"]


def test_archiving_is_idempotent(api: Api) -> None:
    agent = create_agent(api)
    first = api.client.post(f"/v1/agents/{agent['id']}/archive", headers=api.headers()).json()

    again = api.client.post(f"/v1/agents/{agent['id']}/archive", headers=api.headers())

    assert again.status_code == 200
    assert again.json()["archived_at"] == first["archived_at"]
    assert again.json()["status"] == "archived"


def test_an_archived_agent_is_read_only(api: Api) -> None:
    agent = create_agent(api)
    api.client.post(f"/v1/agents/{agent['id']}/archive", headers=api.headers())

    patch = api.client.patch(
        f"/v1/agents/{agent['id']}", json={"description": "x"}, headers=api.headers()
    )
    save = api.client.post(
        f"/v1/agents/{agent['id']}/versions",
        json={"config": soul(), "operation": "save_new_version"},
        headers=api.headers(),
    )

    assert (patch.status_code, error_code(patch)) == (409, "agent_archived")
    assert (save.status_code, error_code(save)) == (409, "agent_archived")


def test_patch_changes_only_the_given_fields(api: Api) -> None:
    agent = create_agent(api, description="before", icon_type="emoji", icon="🙂")

    response = api.client.patch(
        f"/v1/agents/{agent['id']}",
        json={"name": "analyst", "icon": None, "icon_type": None},
        headers=api.headers(),
    )

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "analyst"
    assert patched["description"] == "before"
    assert (patched["icon"], patched["icon_type"]) == (None, None)
    assert patched["active_version"] == 1
    assert get_json(api, f"/v1/agents/{agent['id']}")["name"] == "analyst"


def test_renaming_a_roster_agent_to_a_taken_name_is_409(api: Api) -> None:
    create_agent(api, "researcher")
    other = create_agent(api, "writer")

    response = api.client.patch(
        f"/v1/agents/{other['id']}", json={"name": "researcher"}, headers=api.headers()
    )

    assert response.status_code == 409
    assert error_code(response) == "agent_name_taken"
    assert get_json(api, f"/v1/agents/{other['id']}")["name"] == "writer"


def test_renaming_to_the_name_of_an_archived_agent_is_allowed(api: Api) -> None:
    old = create_agent(api, "researcher")
    api.client.post(f"/v1/agents/{old['id']}/archive", headers=api.headers())
    other = create_agent(api, "writer")

    response = api.client.patch(
        f"/v1/agents/{other['id']}", json={"name": "researcher"}, headers=api.headers()
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"name": None}, "body"),
        ({"description": None}, "body"),
        ({"scope": "workflow_only"}, "scope"),
        ({"icon_type": "gif"}, "icon_type"),
    ],
)
def test_patch_refuses_nulls_for_required_fields_and_unknown_fields(
    api: Api, body: dict[str, Any], location: str
) -> None:
    agent = create_agent(api)

    response = api.client.patch(f"/v1/agents/{agent['id']}", json=body, headers=api.headers())

    assert response.status_code == 422
    assert error_code(response) == "request_invalid"
    assert location in str(response.json()["error"]["details"]["errors"][0]["loc"])


def test_list_is_newest_first_and_pages_with_an_opaque_cursor(api: Api) -> None:
    ids = [create_agent(api, f"agent-{i}")["id"] for i in range(5)]

    first = get_json(api, "/v1/agents", limit=2)
    second = get_json(api, "/v1/agents", limit=2, cursor=first["next_cursor"])
    third = get_json(api, "/v1/agents", limit=2, cursor=second["next_cursor"])

    seen = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None
    assert all(page["items"][0]["active_version"] == 1 for page in (first, second, third))


def test_a_cursor_the_api_did_not_issue_is_400(api: Api) -> None:
    response = api.client.get("/v1/agents", params={"cursor": "@@"}, headers=api.headers())

    assert response.status_code == 400
    assert error_code(response) == "invalid_cursor"


def test_list_filters_by_scope_status_and_name(api: Api) -> None:
    research = create_agent(api, "Research Lead")
    create_agent(api, "writer")
    inline = create_agent(api, "inline researcher", scope="workflow_only")
    archived = create_agent(api, "old research")
    api.client.post(f"/v1/agents/{archived['id']}/archive", headers=api.headers())

    def names(**params: Any) -> list[str]:
        return [item["name"] for item in get_json(api, "/v1/agents", **params)["items"]]

    assert names(q="RESEARCH") == ["inline researcher", "Research Lead"]
    assert names(q="research", scope="roster") == ["Research Lead"]
    assert names(scope="workflow_only") == [inline["name"]]
    assert names(status="archived") == ["old research"]
    assert names(status=["active", "archived"], q="research") == [
        "old research",
        "inline researcher",
        research["name"],
    ]
    assert names(q="%") == []  # LIKE wildcards match themselves


def test_another_tenants_agents_are_invisible_and_404(api: Api) -> None:
    agent = create_agent(api)
    other = create_key(api.database_url, "t2").key

    assert get_json(api, "/v1/agents", key=other)["items"] == []
    for method, path, body in [
        ("GET", f"/v1/agents/{agent['id']}", None),
        ("PATCH", f"/v1/agents/{agent['id']}", {"description": "mine now"}),
        ("POST", f"/v1/agents/{agent['id']}/archive", None),
        ("GET", f"/v1/agents/{agent['id']}/versions", None),
        ("GET", f"/v1/agents/{agent['id']}/versions/1", None),
        ("GET", f"/v1/agents/{agent['id']}/revisions", None),
        (
            "POST",
            f"/v1/agents/{agent['id']}/versions",
            {"config": soul(), "operation": "save_new_version"},
        ),
        ("POST", f"/v1/agents/{agent['id']}/save-as", {"name": "copy"}),
        ("POST", f"/v1/agents/{agent['id']}/save-to-roster", {}),
    ]:
        response = api.client.request(method, path, json=body, headers=api.headers(other))
        assert response.status_code == 404, (method, path, response.text)
        assert error_code(response) == "agent_not_found"
    assert get_json(api, f"/v1/agents/{agent['id']}")["status"] == "active"


def test_the_same_roster_name_is_free_in_another_tenant(api: Api) -> None:
    create_agent(api, "researcher")
    other = create_key(api.database_url, "t2").key

    response = api.client.post(
        "/v1/agents", json=agent_body("researcher"), headers=api.headers(other)
    )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("config", "location"),
    [
        ({**soul(), "temperature": 0.2}, "temperature"),
        ({"prompt": {"system_prompt": "x", "style": "terse"}}, "style"),
        ({"model": {"provider": "test", "model": "m", "settings": {"api_key": "sk"}}}, "settings"),
        ({"env": {"variables": [{"name": "DB_PASSWORD", "value": "x"}]}}, "env"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_a_bad_soul_config_is_422_and_nothing_is_created(
    api: Api, config: dict[str, Any], location: str
) -> None:
    response = api.client.post(
        "/v1/agents",
        json={"name": "researcher", "scope": "roster", "config": config},
        headers=api.headers(),
    )

    assert response.status_code == 422
    assert error_code(response) == "request_invalid"
    assert location in str(response.json()["error"]["details"]["errors"])
    assert get_json(api, "/v1/agents", status=["active", "archived"])["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scope": "roster", "config": {}, "colour": "red"},
        {"name": "", "scope": "roster", "config": {}},
        {"name": "x", "scope": "everywhere", "config": {}},
        {"name": "x", "config": {}},
        {"name": "x", "scope": "roster"},
    ],
)
def test_a_malformed_create_request_is_422(api: Api, body: dict[str, Any]) -> None:
    response = api.client.post("/v1/agents", json=body, headers=api.headers())

    assert response.status_code == 422
    assert error_code(response) == "request_invalid"


def test_agent_routes_need_an_api_key(api: Api) -> None:
    response = api.client.get("/v1/agents")

    assert response.status_code == 401


def test_the_agent_resource_is_documented_in_openapi(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()

    agent_read = schema["components"]["schemas"]["AgentRead"]["properties"]
    assert "description" in agent_read["active_version"]
    create = schema["paths"]["/v1/agents"]["post"]["responses"]
    assert {"201", "409", "422"} <= set(create)
    assert create["409"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
