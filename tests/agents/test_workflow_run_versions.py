"""One agent version per workflow run: the first node run fixes what a following binding
resolves to; edits apply from the next workflow run. Copies can pin followers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.agents.support import (
    binding_path,
    create_agent,
    get_json,
    inline_binding,
    put_binding,
    roster_binding,
    save_version,
    soul,
)
from tests.agents.test_node_runs import bind, node_run
from tests.api_fixtures import Api, ApiFactory

LIST = "/v1/workflows/wf-1/versions/{version}/bindings"


def run_node(api: Api, **fields: Any) -> dict[str, Any]:
    response = node_run(api, **fields)
    assert response.status_code == 202, response.text
    run = api.wait(response.json()["id"])
    assert run["status"] in ("succeeded", "paused"), run
    return run


def layer_names(run: dict[str, Any]) -> list[str]:
    return [entry["name"] for entry in run["session_snapshot"]["layers"]]


def soul_prompt_of_session(api: Api, session_id: str) -> str:
    """The soul prompt the session's last run was composed with (its stored layer specs)."""
    row = get_json(api, f"/v1/sessions/{session_id}")
    [spec] = [s for s in row["composition_layer_specs"] if s["name"] == "agent_soul_prompt"]
    prefix: str = spec["config"]["prefix"]
    return prefix


def test_a_prompt_edit_mid_workflow_run_applies_from_the_next_workflow_run(api: Api) -> None:
    agent = create_agent(api, config=soul("SOUL-V1"))
    v1 = agent["active_config_snapshot_id"]
    bind(api, agent["id"])
    first = run_node(api)

    v2 = save_version(api, agent["id"], soul("SOUL-V2"))["version"]["id"]
    later = run_node(api, node_execution_id="ex-2")
    fresh = run_node(api, run="wr-2")

    assert later["session_id"] == first["session_id"]  # the same conversation went on
    assert later["metadata"]["agent_config_snapshot_id"] == v1
    assert soul_prompt_of_session(api, later["session_id"]) == "SOUL-V1"
    assert fresh["metadata"]["agent_config_snapshot_id"] == v2
    assert soul_prompt_of_session(api, fresh["session_id"]) == "SOUL-V2"
    shown = get_json(api, "/v1/workflow-runs/wr-1")["agent_versions"]
    assert [(v["agent_id"], v["snapshot_id"], v["version"]) for v in shown] == [
        (agent["id"], v1, 1)
    ]
    assert get_json(api, "/v1/workflow-runs/wr-2")["agent_versions"][0]["version"] == 2


def test_adding_human_contacts_mid_workflow_run_keeps_that_runs_composition(api: Api) -> None:
    agent = create_agent(api, config=soul("plain"))
    bind(api, agent["id"])
    first = run_node(api)
    assert "ask_human" not in layer_names(first)

    save_version(api, agent["id"], soul("plain", human={"contacts": [{"name": "ops"}]}))
    later = node_run(api, node_execution_id="ex-2")
    fresh = run_node(api, run="wr-2")

    # before the fix, every later turn of the node failed 422 snapshot_layers_mismatch
    assert later.status_code == 202, later.text
    done = api.wait(later.json()["id"])
    assert done["status"] == "succeeded", done
    assert layer_names(done) == layer_names(first)
    assert "ask_human" in layer_names(fresh)


def test_every_node_following_the_agent_uses_the_fixed_version(api: Api) -> None:
    agent = create_agent(api, config=soul("SOUL-V1"))
    v1 = agent["active_config_snapshot_id"]
    bind(api, agent["id"], node="node-1")
    bind(api, agent["id"], node="node-2")
    run_node(api, node="node-1")

    save_version(api, agent["id"], soul("SOUL-V2"))
    second_node = run_node(api, node="node-2")

    assert second_node["metadata"]["agent_config_snapshot_id"] == v1
    assert soul_prompt_of_session(api, second_node["session_id"]) == "SOUL-V1"


def test_a_pinned_binding_runs_its_pin_and_fixes_nothing(api: Api) -> None:
    agent = create_agent(api, config=soul("SOUL-V1"))
    v1 = agent["active_config_snapshot_id"]
    v2 = save_version(api, agent["id"], soul("SOUL-V2"))["version"]["id"]
    pinned = roster_binding(agent["id"], snapshot_id=v1)
    assert put_binding(api, pinned, node="pinned").status_code == 201

    run = run_node(api, node="pinned")
    follower = bind(api, agent["id"], node="follower")
    followed = run_node(api, node="follower")

    assert run["metadata"]["agent_config_snapshot_id"] == v1
    assert follower["resolved_snapshot_id"] == v2
    assert followed["metadata"]["agent_config_snapshot_id"] == v2  # fixed by its own first run
    versions = get_json(api, "/v1/workflow-runs/wr-1")["agent_versions"]
    assert [v["snapshot_id"] for v in versions] == [v2]


def test_concurrent_first_node_runs_and_edits_agree_on_one_version(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(run_worker=False)
    agent = create_agent(api, config=soul("SOUL-0"))
    nodes = [f"node-{index}" for index in range(6)]
    for node in nodes:
        bind(api, agent["id"], node=node)
    barrier = threading.Barrier(len(nodes) + 1)

    def post(node: str | None) -> Any:
        barrier.wait()
        if node is None:
            for index in range(1, 4):  # edits racing the first node runs
                save_version(api, agent["id"], soul(f"SOUL-{index}"))
            return None
        return node_run(api, node=node)

    with ThreadPoolExecutor(max_workers=len(nodes) + 1) as pool:
        responses = [r for r in pool.map(post, [*nodes, None]) if r is not None]

    assert [r.status_code for r in responses] == [202] * len(nodes), [r.text for r in responses]
    used = {r.json()["metadata"]["agent_config_snapshot_id"] for r in responses}
    [fixed] = get_json(api, "/v1/workflow-runs/wr-1")["agent_versions"]
    assert used == {fixed["snapshot_id"]}


def test_copying_with_pin_followers_pins_each_following_binding(api: Api) -> None:
    agent = create_agent(api, config=soul("SOUL-V1"))
    v1 = agent["active_config_snapshot_id"]
    v2 = save_version(api, agent["id"], soul("SOUL-V2"))["version"]["id"]
    put_binding(api, roster_binding(agent["id"]), node="follower")
    put_binding(api, roster_binding(agent["id"], snapshot_id=v1), node="pinned")
    put_binding(api, inline_binding(), node="inline")
    inline_pin = get_json(api, binding_path(node="inline"))["snapshot_id"]

    response = api.client.post(
        LIST.format(version="draft") + "/copy",
        json={"target_version": "v1", "pin_followers": True},
        headers=api.headers(),
    )
    plain = api.client.post(
        LIST.format(version="draft") + "/copy",
        json={"target_version": "v2"},
        headers=api.headers(),
    )

    assert response.status_code == 200, response.text
    copied = {b["node_id"]: b for b in response.json()["items"]}
    assert copied["follower"]["snapshot_id"] == v2
    assert copied["follower"]["resolved_snapshot_id"] == v2
    assert copied["pinned"]["snapshot_id"] == v1
    assert copied["inline"]["snapshot_id"] == inline_pin
    assert get_json(api, LIST.format(version="v1"))["items"] == response.json()["items"]
    assert {b["node_id"]: b["snapshot_id"] for b in plain.json()["items"]}["follower"] is None
    draft = get_json(api, binding_path(node="follower"))
    assert draft["snapshot_id"] is None  # the source keeps following

    v3 = save_version(api, agent["id"], soul("SOUL-V3"))["version"]["id"]
    published = run_node(api, node="follower", workflow_version="v1", run="wr-pub")
    following = run_node(api, node="follower", workflow_version="v2", run="wr-follow")
    assert published["metadata"]["agent_config_snapshot_id"] == v2
    assert following["metadata"]["agent_config_snapshot_id"] == v3


def test_pin_followers_must_be_a_boolean(api: Api) -> None:
    agent = create_agent(api)
    put_binding(api, roster_binding(agent["id"]), node="follower")

    response = api.client.post(
        LIST.format(version="draft") + "/copy",
        json={"target_version": "v1", "pin_followers": "yes"},
        headers=api.headers(),
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "request_invalid"
    assert get_json(api, LIST.format(version="v1"))["items"] == []
