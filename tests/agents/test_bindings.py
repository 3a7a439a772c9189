"""Workflow node bindings through HTTP, and `resolve_binding` as the node-run builder calls it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.agents.bindings import ResolvedBinding, resolve_binding
from app.db import create_engine, create_session_factory
from app.errors import NotFound
from tests.agents.support import (
    binding_path,
    create_agent,
    error_code,
    get_json,
    inline_binding,
    job,
    put_binding,
    roster_binding,
    save_version,
    soul,
)
from tests.api_fixtures import Api, create_key
from tests.db_fixtures import run_coroutine_blocking

LIST = "/v1/workflows/wf-1/versions/{version}/bindings"


def resolve(
    api: Api, tenant_id: uuid.UUID, version: str = "draft", node: str = "node-1"
) -> ResolvedBinding:
    async def _resolve() -> ResolvedBinding:
        engine = create_engine(api.database_url)
        try:
            async with create_session_factory(engine)() as session:
                return await resolve_binding(session, tenant_id, "wf-1", version, node)
        finally:
            await engine.dispose()

    return run_coroutine_blocking(_resolve)


def tenant_of_api(api: Api) -> uuid.UUID:
    return create_key(api.database_url, "t1").tenant_id  # t1 is the `api` client's tenant


# --- roster bindings -----------------------------------------------------------------------------


def test_binding_a_node_to_a_roster_agent_answers_201_then_200(api: Api) -> None:
    agent = create_agent(api)

    created = put_binding(api, roster_binding(agent["id"]))
    replaced = put_binding(
        api, roster_binding(agent["id"], node_job_config=job("Translate the input."))
    )

    assert created.status_code == 201, created.text
    assert replaced.status_code == 200, replaced.text
    binding = replaced.json()
    assert binding["id"] == created.json()["id"]
    assert (binding["workflow_id"], binding["workflow_version"], binding["node_id"]) == (
        "wf-1",
        "draft",
        "node-1",
    )
    assert binding["binding_type"] == "roster_agent"
    assert binding["agent_id"] == agent["id"]
    assert binding["app_id"] == "app-1"
    assert binding["node_job_config"]["workflow_prompt"] == "Translate the input."
    assert binding["node_job_config"]["mode"] == "tell_agent_what_to_do"
    assert get_json(api, binding_path()) == binding


def test_a_following_binding_resolves_to_the_agents_latest_active_snapshot(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]))
    v2 = save_version(api, agent["id"], soul("Version two."))

    binding = get_json(api, binding_path())
    resolved = resolve(api, tenant_of_api(api))

    assert binding["snapshot_id"] is None
    assert binding["resolved_snapshot_id"] == v2["version"]["id"]
    assert binding["resolved_version"] == 2
    assert str(resolved.snapshot.id) == v2["version"]["id"]
    assert resolved.soul_config().prompt.system_prompt == "Version two."
    assert str(resolved.agent.id) == agent["id"]
    assert resolved.job_config().workflow_prompt == "Summarise the input."


def test_a_pinned_binding_keeps_its_snapshot_when_the_agent_moves_on(api: Api) -> None:
    agent = create_agent(api)
    v1 = agent["active_config_snapshot_id"]
    put_binding(api, roster_binding(agent["id"], snapshot_id=v1))
    save_version(api, agent["id"], soul("Version two."))

    binding = get_json(api, binding_path())
    resolved = resolve(api, tenant_of_api(api))

    assert binding["snapshot_id"] == v1
    assert (binding["resolved_snapshot_id"], binding["resolved_version"]) == (v1, 1)
    assert str(resolved.snapshot.id) == v1
    assert resolved.soul_config().prompt.system_prompt == "You are careful."


def test_resolving_an_unbound_node_raises_binding_not_found(api: Api) -> None:
    with pytest.raises(NotFound) as raised:
        resolve(api, tenant_of_api(api), node="nowhere")

    assert raised.value.code == "binding_not_found"


def test_a_snapshot_of_another_agent_cannot_be_pinned(api: Api) -> None:
    agent = create_agent(api, "researcher")
    other = create_agent(api, "writer")

    response = put_binding(
        api, roster_binding(agent["id"], snapshot_id=other["active_config_snapshot_id"])
    )
    unknown = put_binding(api, roster_binding(agent["id"], snapshot_id=str(uuid.uuid4())))

    assert response.status_code == 422
    assert error_code(response) == "snapshot_not_of_agent"
    assert (unknown.status_code, error_code(unknown)) == (422, "snapshot_not_of_agent")
    missing = api.client.get(binding_path(), headers=api.headers())
    assert missing.status_code == 404


def test_binding_an_unknown_agent_is_404(api: Api) -> None:
    response = put_binding(api, roster_binding(str(uuid.uuid4())))

    assert response.status_code == 404
    assert error_code(response) == "agent_not_found"


def test_a_roster_binding_needs_a_roster_agent(api: Api) -> None:
    inline = create_agent(api, "helper", scope="workflow_only")

    response = put_binding(api, roster_binding(inline["id"]))

    assert response.status_code == 422
    assert error_code(response) == "agent_not_in_roster"


def test_a_new_binding_to_an_archived_agent_is_409(api: Api) -> None:
    agent = create_agent(api)
    api.client.post(f"/v1/agents/{agent['id']}/archive", headers=api.headers())

    response = put_binding(api, roster_binding(agent["id"]))

    assert response.status_code == 409
    assert error_code(response) == "agent_archived"


def test_archiving_an_agent_leaves_its_bindings_working(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]))
    api.client.post(f"/v1/agents/{agent['id']}/archive", headers=api.headers())

    binding = get_json(api, binding_path())
    updated = put_binding(api, roster_binding(agent["id"], node_job_config=job("New job.")))
    resolved = resolve(api, tenant_of_api(api))

    assert binding["resolved_snapshot_id"] == agent["active_config_snapshot_id"]
    assert updated.status_code == 200, updated.text
    assert resolved.agent.status == "archived"
    assert str(resolved.snapshot.id) == agent["active_config_snapshot_id"]


@pytest.mark.parametrize(
    "body",
    [
        {"binding_type": "roster_agent", "app_id": "a", "node_job_config": {}},
        {
            "binding_type": "roster_agent",
            "agent_id": str(uuid.uuid4()),
            "agent": {"name": "x", "config": {}},
            "app_id": "a",
            "node_job_config": {},
        },
        {"binding_type": "inline_agent", "app_id": "a", "node_job_config": {}},
        {
            "binding_type": "inline_agent",
            "agent": {"name": "x", "config": {}},
            "snapshot_id": str(uuid.uuid4()),
            "app_id": "a",
            "node_job_config": {},
        },
        {
            "binding_type": "roster_agent",
            "agent_id": str(uuid.uuid4()),
            "node_job_config": {},
        },
    ],
)
def test_the_agent_fields_must_match_the_binding_type(api: Api, body: dict[str, Any]) -> None:
    response = put_binding(api, body)

    assert response.status_code == 422
    assert error_code(response) == "request_invalid"


@pytest.mark.parametrize(
    ("node_job_config", "message"),
    [
        ({"declared_outputs": [{"name": "1st", "type": "string"}]}, "pattern"),
        (
            {
                "declared_outputs": [
                    {"name": "a", "type": "string"},
                    {"name": "a", "type": "number"},
                ]
            },
            "unique",
        ),
        ({"declared_outputs": [{"name": "a", "type": "string", "file": {}}]}, "only for type file"),
        (
            {
                "declared_outputs": [
                    {"name": "n", "type": "number", "failure_strategy": {"default_value": "x"}}
                ]
            },
            "default_value",
        ),
        ({"declared_outputs": [{"name": "a", "type": "date"}]}, "type"),
        ({"mode": "improvise"}, "mode"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_bad_node_job_config_is_422(
    api: Api, node_job_config: dict[str, Any], message: str
) -> None:
    agent = create_agent(api)

    response = put_binding(api, roster_binding(agent["id"], node_job_config=node_job_config))

    assert response.status_code == 422
    assert error_code(response) == "request_invalid"
    assert message in str(response.json()["error"]["details"]["errors"])


def test_a_bad_inline_agent_config_is_422_and_creates_no_agent(api: Api) -> None:
    response = put_binding(api, inline_binding(config={"prompt": {"text": "hi"}}))

    assert response.status_code == 422
    assert error_code(response) == "request_invalid"
    assert get_json(api, "/v1/agents", scope="workflow_only")["items"] == []


# --- inline bindings -----------------------------------------------------------------------------


def test_an_inline_binding_creates_a_workflow_only_agent_and_pins_its_version_1(api: Api) -> None:
    response = put_binding(api, inline_binding("node helper"))

    assert response.status_code == 201, response.text
    binding = response.json()
    assert binding["binding_type"] == "inline_agent"
    agent = get_json(api, f"/v1/agents/{binding['agent_id']}")
    assert agent["scope"] == "workflow_only"
    assert agent["source"] == "workflow"
    assert (agent["app_id"], agent["workflow_id"], agent["workflow_node_id"]) == (
        "app-1",
        "wf-1",
        "node-1",
    )
    assert agent["name"] == "node helper"
    assert binding["snapshot_id"] == agent["active_config_snapshot_id"]
    assert binding["resolved_version"] == 1
    revisions = get_json(api, f"/v1/agents/{agent['id']}/revisions")["items"]
    assert [r["operation"] for r in revisions] == ["create_version"]


def test_a_changed_inline_config_adds_a_version_to_the_same_agent(api: Api) -> None:
    first = put_binding(api, inline_binding(config=soul("One."))).json()

    second = put_binding(api, inline_binding("renamed", config=soul("Two.")))

    assert second.status_code == 200, second.text
    binding = second.json()
    assert binding["agent_id"] == first["agent_id"]
    assert binding["resolved_version"] == 2
    assert binding["snapshot_id"] == binding["resolved_snapshot_id"]
    agent = get_json(api, f"/v1/agents/{binding['agent_id']}")
    assert agent["name"] == "renamed"
    assert agent["active_config_snapshot_id"] == binding["snapshot_id"]
    revisions = get_json(api, f"/v1/agents/{agent['id']}/revisions")["items"]
    assert revisions[0]["operation"] == "save_current_version"
    assert revisions[0]["previous_snapshot_id"] == first["snapshot_id"]


def test_repeating_an_inline_put_writes_no_new_version(api: Api) -> None:
    first = put_binding(api, inline_binding()).json()

    again = put_binding(api, inline_binding())

    assert again.status_code == 200
    assert again.json()["snapshot_id"] == first["snapshot_id"]
    versions = get_json(api, f"/v1/agents/{first['agent_id']}/versions")["items"]
    assert len(versions) == 1


def test_an_inline_binding_promoted_to_the_roster_gets_a_fresh_inline_agent(api: Api) -> None:
    first = put_binding(api, inline_binding("helper")).json()
    api.client.post(
        f"/v1/agents/{first['agent_id']}/save-to-roster", json={}, headers=api.headers()
    )

    again = put_binding(api, inline_binding("helper", config=soul("Edited in the node.")))

    assert again.status_code == 200, again.text
    assert again.json()["agent_id"] != first["agent_id"]
    promoted = get_json(api, f"/v1/agents/{first['agent_id']}")
    assert (promoted["scope"], promoted["active_version"]) == ("roster", 1)


def test_switching_a_node_from_inline_to_roster_rebinds_it(api: Api) -> None:
    put_binding(api, inline_binding())
    roster = create_agent(api)

    response = put_binding(api, roster_binding(roster["id"]))

    assert response.status_code == 200
    assert (response.json()["binding_type"], response.json()["agent_id"]) == (
        "roster_agent",
        roster["id"],
    )
    assert response.json()["snapshot_id"] is None


# --- get, delete, list ---------------------------------------------------------------------------


def test_deleting_a_binding_answers_204_and_leaves_the_agent(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]))

    deleted = api.client.delete(binding_path(), headers=api.headers())
    again = api.client.delete(binding_path(), headers=api.headers())

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (again.status_code, error_code(again)) == (404, "binding_not_found")
    gone = api.client.get(binding_path(), headers=api.headers())
    assert (gone.status_code, error_code(gone)) == (404, "binding_not_found")
    assert get_json(api, f"/v1/agents/{agent['id']}")["status"] == "active"


def test_a_versions_bindings_are_listed_by_node(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]), node="node-b")
    put_binding(api, inline_binding(), node="node-a")
    put_binding(api, roster_binding(agent["id"]), version="v1", node="node-c")

    draft = get_json(api, LIST.format(version="draft"))["items"]

    assert [b["node_id"] for b in draft] == ["node-a", "node-b"]
    assert [b["resolved_version"] for b in draft] == [1, 1]
    assert draft[1]["resolved_snapshot_id"] == agent["active_config_snapshot_id"]
    assert get_json(api, LIST.format(version="nothing"))["items"] == []


# --- copy ----------------------------------------------------------------------------------------


def test_copying_bindings_publishes_a_draft_as_it_is(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]), node="node-a")
    put_binding(api, roster_binding(agent["id"], agent["active_config_snapshot_id"]), node="node-b")
    put_binding(api, inline_binding(), node="node-c")
    draft = get_json(api, LIST.format(version="draft"))["items"]

    response = api.client.post(
        LIST.format(version="draft") + "/copy", json={"target_version": "v1"}, headers=api.headers()
    )

    assert response.status_code == 200, response.text
    copied = response.json()["items"]
    assert copied == get_json(api, LIST.format(version="v1"))["items"]
    fields = ("node_id", "binding_type", "agent_id", "snapshot_id", "app_id", "node_job_config")
    assert [{f: b[f] for f in fields} for b in copied] == [{f: b[f] for f in fields} for b in draft]
    assert {b["workflow_version"] for b in copied} == {"v1"}
    assert not {b["id"] for b in copied} & {b["id"] for b in draft}


def test_editing_the_draft_after_publishing_leaves_the_published_version_alone(api: Api) -> None:
    put_binding(api, inline_binding(config=soul("Published.")))
    api.client.post(
        LIST.format(version="draft") + "/copy", json={"target_version": "v1"}, headers=api.headers()
    )

    put_binding(api, inline_binding(config=soul("Draft edit.")))

    published = resolve(api, tenant_of_api(api), version="v1")
    draft = resolve(api, tenant_of_api(api), version="draft")
    assert published.soul_config().prompt.system_prompt == "Published."
    assert draft.soul_config().prompt.system_prompt == "Draft edit."
    assert published.agent.id == draft.agent.id


def test_copying_onto_a_version_with_bindings_is_409_unless_replace(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]), node="node-a")
    put_binding(api, roster_binding(agent["id"]), version="v1", node="stale")
    copy = LIST.format(version="draft") + "/copy"

    refused = api.client.post(copy, json={"target_version": "v1"}, headers=api.headers())
    replaced = api.client.post(
        copy, json={"target_version": "v1", "replace": True}, headers=api.headers()
    )

    assert refused.status_code == 409
    assert error_code(refused) == "bindings_exist"
    assert refused.json()["error"]["details"] == {"target_version": "v1", "count": 1}
    assert replaced.status_code == 200, replaced.text
    nodes = [b["node_id"] for b in get_json(api, LIST.format(version="v1"))["items"]]
    assert nodes == ["node-a"]


def test_copying_a_version_onto_itself_is_422(api: Api) -> None:
    response = api.client.post(
        LIST.format(version="draft") + "/copy",
        json={"target_version": "draft"},
        headers=api.headers(),
    )

    assert response.status_code == 422
    assert error_code(response) == "same_workflow_version"


def test_copy_carries_bindings_to_archived_agents_forward(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]))
    api.client.post(f"/v1/agents/{agent['id']}/archive", headers=api.headers())

    response = api.client.post(
        LIST.format(version="draft") + "/copy", json={"target_version": "v1"}, headers=api.headers()
    )

    assert response.status_code == 200, response.text
    assert [b["agent_id"] for b in response.json()["items"]] == [agent["id"]]


# --- tenancy -------------------------------------------------------------------------------------


def test_another_tenant_cannot_see_or_change_bindings(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]))
    other = create_key(api.database_url, "t2").key

    get = api.client.get(binding_path(), headers=api.headers(other))
    delete = api.client.delete(binding_path(), headers=api.headers(other))
    listed = get_json(api, LIST.format(version="draft"), key=other)["items"]
    copy = api.client.post(
        LIST.format(version="draft") + "/copy",
        json={"target_version": "v1"},
        headers=api.headers(other),
    )

    assert (get.status_code, error_code(get)) == (404, "binding_not_found")
    assert (delete.status_code, error_code(delete)) == (404, "binding_not_found")
    assert listed == []
    assert (copy.status_code, copy.json()["items"]) == (200, [])
    assert get_json(api, binding_path())["agent_id"] == agent["id"]
    with pytest.raises(NotFound):
        resolve(api, create_key(api.database_url, "t2").tenant_id)


def test_another_tenants_agent_cannot_be_bound(api: Api) -> None:
    agent = create_agent(api)
    other = create_key(api.database_url, "t2").key

    response = api.client.put(
        binding_path(), json=roster_binding(agent["id"]), headers=api.headers(other)
    )

    assert response.status_code == 404
    assert error_code(response) == "agent_not_found"


def test_the_same_node_address_is_independent_per_tenant(api: Api) -> None:
    mine = create_agent(api)
    other = create_key(api.database_url, "t2").key
    theirs = api.client.post(
        "/v1/agents",
        json={"name": "theirs", "scope": "roster", "config": soul()},
        headers=api.headers(other),
    ).json()

    put_binding(api, roster_binding(mine["id"]))
    response = api.client.put(
        binding_path(), json=roster_binding(theirs["id"]), headers=api.headers(other)
    )

    assert response.status_code == 201, response.text
    assert get_json(api, binding_path())["agent_id"] == mine["id"]
    assert get_json(api, binding_path(), key=other)["agent_id"] == theirs["id"]
