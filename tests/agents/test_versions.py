"""Config versions and the revision log through HTTP: saves, save-as, save-to-roster, history."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.agents.support import (
    create_agent,
    error_code,
    get_json,
    save_version,
    soul,
)
from tests.api_fixtures import Api


def revisions_of(api: Api, agent_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(api, f"/v1/agents/{agent_id}/revisions")["items"]
    return items


def test_saving_a_new_version_adds_snapshot_2_and_moves_the_active_pointer(api: Api) -> None:
    agent = create_agent(api)

    saved = save_version(
        api,
        agent["id"],
        soul("Be thorough."),
        "save_new_version",
        summary="more thorough",
        version_note="v2 notes",
    )

    assert saved["version"]["version"] == 2
    assert saved["version"]["is_active"] is True
    assert saved["version"]["config"]["prompt"]["system_prompt"] == "Be thorough."
    assert (saved["version"]["summary"], saved["version"]["version_note"]) == (
        "more thorough",
        "v2 notes",
    )
    assert saved["agent"]["active_version"] == 2
    assert saved["agent"]["active_config_snapshot_id"] == saved["version"]["id"]
    assert saved["revision"] == {
        **saved["revision"],
        "revision": 2,
        "operation": "save_new_version",
        "previous_snapshot_id": agent["active_config_snapshot_id"],
        "current_snapshot_id": saved["version"]["id"],
        "summary": "more thorough",
        "version_note": "v2 notes",
    }
    assert get_json(api, f"/v1/agents/{agent['id']}")["active_version"] == 2


def test_old_versions_stay_unchanged_after_a_save(api: Api) -> None:
    agent = create_agent(api)
    save_version(api, agent["id"], soul("Changed."))

    first = get_json(api, f"/v1/agents/{agent['id']}/versions/1")

    assert first["config"]["prompt"]["system_prompt"] == "You are careful."
    assert first["is_active"] is False


def test_save_current_version_writes_the_next_number_and_keeps_the_notes(api: Api) -> None:
    agent = create_agent(api)
    save_version(api, agent["id"], soul("v2"), "save_new_version", summary="s", version_note="n")

    kept = save_version(api, agent["id"], soul("v2 edited"), "save_current_version")
    replaced = save_version(
        api, agent["id"], soul("v2 edited again"), "save_current_version", summary="s2"
    )

    assert kept["version"]["version"] == 3
    assert (kept["version"]["summary"], kept["version"]["version_note"]) == ("s", "n")
    assert kept["revision"]["operation"] == "save_current_version"
    assert (replaced["version"]["summary"], replaced["version"]["version_note"]) == ("s2", "n")


def test_the_revision_chain_links_every_save_to_the_snapshot_before_it(api: Api) -> None:
    agent = create_agent(api)
    operations = ["save_new_version", "save_current_version", "save_new_version"]
    saves = [
        save_version(api, agent["id"], soul(f"step {i}"), operation)
        for i, operation in enumerate(operations)
    ]

    revisions = revisions_of(api, agent["id"])

    assert [r["revision"] for r in revisions] == [4, 3, 2, 1]
    assert [r["operation"] for r in revisions] == [*reversed(operations), "create_version"]
    chain = list(reversed(revisions))
    assert chain[0]["previous_snapshot_id"] is None
    for before, after in itertools.pairwise(chain):
        assert after["previous_snapshot_id"] == before["current_snapshot_id"]
    assert chain[-1]["current_snapshot_id"] == saves[-1]["agent"]["active_config_snapshot_id"]


def test_versions_are_listed_newest_first_and_paged(api: Api) -> None:
    agent = create_agent(api)
    for i in range(4):
        save_version(api, agent["id"], soul(f"v{i + 2}"))

    first = get_json(api, f"/v1/agents/{agent['id']}/versions", limit=3)
    rest = get_json(api, f"/v1/agents/{agent['id']}/versions", limit=3, before=first["next_cursor"])

    assert [v["version"] for v in first["items"]] == [5, 4, 3]
    assert [v["version"] for v in rest["items"]] == [2, 1]
    assert rest["next_cursor"] is None
    assert [v["is_active"] for v in first["items"]] == [True, False, False]
    assert "config" not in first["items"][0]


def test_revisions_are_paged_newest_first(api: Api) -> None:
    agent = create_agent(api)
    for i in range(3):
        save_version(api, agent["id"], soul(f"v{i + 2}"))

    first = get_json(api, f"/v1/agents/{agent['id']}/revisions", limit=2)
    rest = get_json(
        api, f"/v1/agents/{agent['id']}/revisions", limit=2, before=first["next_cursor"]
    )

    assert [r["revision"] for r in first["items"]] == [4, 3]
    assert [r["revision"] for r in rest["items"]] == [2, 1]
    assert rest["next_cursor"] is None


def test_an_unknown_version_is_404_version_not_found(api: Api) -> None:
    agent = create_agent(api)

    response = api.client.get(f"/v1/agents/{agent['id']}/versions/7", headers=api.headers())

    assert response.status_code == 404
    assert error_code(response) == "version_not_found"


@pytest.mark.parametrize("operation", ["create_version", "save_new_agent", "save_to_roster", "x"])
def test_versions_accept_only_the_two_save_operations(api: Api, operation: str) -> None:
    agent = create_agent(api)

    response = api.client.post(
        f"/v1/agents/{agent['id']}/versions",
        json={"config": soul(), "operation": operation},
        headers=api.headers(),
    )

    assert response.status_code == 422
    assert error_code(response) == "request_invalid"


def test_a_bad_config_in_a_save_is_422_and_writes_nothing(api: Api) -> None:
    agent = create_agent(api)

    response = api.client.post(
        f"/v1/agents/{agent['id']}/versions",
        json={"config": {**soul(), "tools": {"magic": []}}, "operation": "save_new_version"},
        headers=api.headers(),
    )

    assert response.status_code == 422
    assert "magic" in str(response.json()["error"]["details"]["errors"])
    assert len(revisions_of(api, agent["id"])) == 1


def test_concurrent_saves_get_distinct_consecutive_numbers(api: Api) -> None:
    agent = create_agent(api)
    count = 16

    def save(i: int) -> Any:
        operation = "save_new_version" if i % 2 else "save_current_version"
        return api.client.post(
            f"/v1/agents/{agent['id']}/versions",
            json={"config": soul(f"writer {i}"), "operation": operation},
            headers=api.headers(),
        )

    with ThreadPoolExecutor(max_workers=count) as pool:
        responses = list(pool.map(save, range(count)))

    assert [r.status_code for r in responses] == [201] * count, [r.text for r in responses]
    versions = sorted(r.json()["version"]["version"] for r in responses)
    revisions = sorted(r.json()["revision"]["revision"] for r in responses)
    assert versions == list(range(2, count + 2))
    assert revisions == list(range(2, count + 2))
    listed = get_json(api, f"/v1/agents/{agent['id']}/versions", limit=200)["items"]
    assert [v["version"] for v in listed] == list(range(count + 1, 0, -1))
    # Serialized: each save's previous snapshot is the one the save before it wrote.
    chain = list(reversed(revisions_of(api, agent["id"])))
    assert len(chain) == count + 1
    for before, after in itertools.pairwise(chain):
        assert after["previous_snapshot_id"] == before["current_snapshot_id"]
    final = get_json(api, f"/v1/agents/{agent['id']}")
    assert final["active_version"] == count + 1
    assert final["active_config_snapshot_id"] == chain[-1]["current_snapshot_id"]


# --- save as a new agent -------------------------------------------------------------------------


def test_save_as_copies_the_active_config_into_a_new_agent(api: Api) -> None:
    source = create_agent(api, "researcher", description="Finds sources.", icon="🔎")
    saved_v2 = save_version(api, source["id"], soul("Current config."))

    response = api.client.post(
        f"/v1/agents/{source['id']}/save-as",
        json={"name": "researcher copy", "summary": "forked"},
        headers=api.headers(),
    )

    assert response.status_code == 201, response.text
    saved = response.json()
    copy = saved["agent"]
    assert copy["id"] != source["id"]
    assert (copy["name"], copy["description"], copy["icon"]) == (
        "researcher copy",
        "Finds sources.",
        "🔎",
    )
    assert copy["scope"] == "roster"
    assert copy["active_version"] == 1
    assert saved["version"]["config"]["prompt"]["system_prompt"] == "Current config."
    assert saved["revision"]["revision"] == 1
    assert saved["revision"]["operation"] == "save_new_agent"
    assert saved["revision"]["previous_snapshot_id"] == saved_v2["version"]["id"]
    assert saved["revision"]["current_snapshot_id"] == saved["version"]["id"]
    assert saved["revision"]["summary"] == "forked"
    assert len(revisions_of(api, source["id"])) == 2  # the source is untouched


def test_save_as_takes_a_given_config_and_scope(api: Api) -> None:
    source = create_agent(api)

    response = api.client.post(
        f"/v1/agents/{source['id']}/save-as",
        json={"name": "variant", "scope": "workflow_only", "config": soul("Variant.")},
        headers=api.headers(),
    )

    assert response.status_code == 201, response.text
    assert response.json()["agent"]["scope"] == "workflow_only"
    assert response.json()["version"]["config"]["prompt"]["system_prompt"] == "Variant."


def test_save_as_with_a_taken_roster_name_is_409(api: Api) -> None:
    source = create_agent(api, "researcher")

    response = api.client.post(
        f"/v1/agents/{source['id']}/save-as", json={"name": "researcher"}, headers=api.headers()
    )

    assert response.status_code == 409
    assert error_code(response) == "agent_name_taken"


def test_an_archived_agent_can_still_be_saved_as_a_new_one(api: Api) -> None:
    source = create_agent(api, "researcher")
    api.client.post(f"/v1/agents/{source['id']}/archive", headers=api.headers())

    response = api.client.post(
        f"/v1/agents/{source['id']}/save-as", json={"name": "researcher"}, headers=api.headers()
    )

    assert response.status_code == 201, response.text
    assert response.json()["agent"]["status"] == "active"


# --- save to roster ------------------------------------------------------------------------------


def test_save_to_roster_promotes_a_workflow_only_agent(api: Api) -> None:
    inline = create_agent(api, "helper", scope="workflow_only", source="workflow")

    response = api.client.post(
        f"/v1/agents/{inline['id']}/save-to-roster",
        json={"name": "Helper"},
        headers=api.headers(),
    )

    assert response.status_code == 200, response.text
    saved = response.json()
    assert saved["agent"]["scope"] == "roster"
    assert saved["agent"]["name"] == "Helper"
    assert saved["agent"]["active_version"] == 1
    assert saved["revision"]["revision"] == 2
    assert saved["revision"]["operation"] == "save_to_roster"
    assert saved["revision"]["previous_snapshot_id"] == inline["active_config_snapshot_id"]
    assert saved["revision"]["current_snapshot_id"] == inline["active_config_snapshot_id"]
    names = [a["name"] for a in get_json(api, "/v1/agents", scope="roster")["items"]]
    assert names == ["Helper"]


def test_save_to_roster_without_a_body_keeps_the_name(api: Api) -> None:
    inline = create_agent(api, "helper", scope="workflow_only")

    response = api.client.post(f"/v1/agents/{inline['id']}/save-to-roster", headers=api.headers())

    assert response.status_code == 200, response.text
    assert response.json()["agent"]["name"] == "helper"


def test_save_to_roster_under_a_taken_name_is_409_and_changes_nothing(api: Api) -> None:
    create_agent(api, "helper")
    inline = create_agent(api, "helper", scope="workflow_only")

    response = api.client.post(
        f"/v1/agents/{inline['id']}/save-to-roster", json={}, headers=api.headers()
    )

    assert response.status_code == 409
    assert error_code(response) == "agent_name_taken"
    assert get_json(api, f"/v1/agents/{inline['id']}")["scope"] == "workflow_only"
    assert len(revisions_of(api, inline["id"])) == 1


def test_save_to_roster_of_a_roster_agent_is_409_already_in_roster(api: Api) -> None:
    agent = create_agent(api)

    response = api.client.post(
        f"/v1/agents/{agent['id']}/save-to-roster", json={}, headers=api.headers()
    )

    assert response.status_code == 409
    assert error_code(response) == "already_in_roster"
