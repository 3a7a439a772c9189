"""Saving an agent version checks it like a node run would: 422 with the run's codes, nothing
stored. Covers create, save version, save-as and an inline binding's agent, on a server's
allow-list and model providers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.layers import LayerRegistry
from app.main import create_app
from tests.agents.support import (
    agent_body,
    binding_path,
    create_agent,
    error_code,
    get_json,
    inline_binding,
    put_binding,
    soul,
)
from tests.api_fixtures import Api, ApiFactory, create_key, make_settings
from tests.runs.bodies import layer

ACME = {"provider": "acme", "model": "big"}


def versions_of(api: Api, agent_id: str) -> list[int]:
    items = get_json(api, f"/v1/agents/{agent_id}/versions")["items"]
    return [item["version"] for item in items]


def revisions_of(api: Api, agent_id: str) -> list[int]:
    items = get_json(api, f"/v1/agents/{agent_id}/revisions")["items"]
    return [item["revision"] for item in items]


def assert_refused(response: Any, code: str, field: str, layer: str = "llm") -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["details"]["field"] == field, error
    assert error["details"]["layer"] == layer, error
    return error


def test_creating_an_agent_with_an_unknown_model_provider_is_422_and_stores_nothing(
    api: Api,
) -> None:
    response = api.client.post(
        "/v1/agents", json=agent_body(config=soul(model=ACME)), headers=api.headers()
    )

    error = assert_refused(response, "unknown_model_provider", "config.model.provider")
    assert "'acme'" in error["message"]
    assert get_json(api, "/v1/agents", status=["active", "archived"])["items"] == []


def test_saving_a_version_with_an_unknown_model_provider_is_422_and_stores_nothing(
    api: Api,
) -> None:
    agent = create_agent(api)

    response = api.client.post(
        f"/v1/agents/{agent['id']}/versions",
        json={"config": soul("changed", model=ACME), "operation": "save_new_version"},
        headers=api.headers(),
    )

    assert_refused(response, "unknown_model_provider", "config.model.provider")
    assert versions_of(api, agent["id"]) == [1]
    assert revisions_of(api, agent["id"]) == [1]
    assert get_json(api, f"/v1/agents/{agent['id']}")["active_version"] == 1


def test_the_code_is_the_one_a_run_with_that_provider_gets(api: Api) -> None:
    saved = api.client.post(
        "/v1/agents", json=agent_body(config=soul(model=ACME)), headers=api.headers()
    )
    run = api.post_run({"composition": {"layers": [layer("llm", "llm.openai", ACME)]}})

    assert saved.status_code == run.status_code == 422
    assert error_code(saved) == error_code(run) == "unknown_model_provider"


def test_the_error_names_no_configured_provider(api_factory: ApiFactory) -> None:
    api = api_factory(model_providers={"acme-private-gateway": {"base_url": "http://127.0.0.1:9"}})

    response = api.client.post(
        "/v1/agents",
        json=agent_body(config=soul(model={"provider": "acme", "model": "m"})),
        headers=api.headers(),
    )

    assert error_code(response) == "unknown_model_provider"
    assert "acme-private-gateway" not in response.text


def test_a_configured_provider_saves(api_factory: ApiFactory) -> None:
    api = api_factory(model_providers={"acme": {"base_url": "http://127.0.0.1:9/v1"}})

    agent = create_agent(api, config=soul(model={**ACME, "settings": {"temperature": 0.3}}))

    assert versions_of(api, agent["id"]) == [1]


@pytest.mark.parametrize(
    ("model", "code", "field"),
    [
        (
            {"provider": "test", "model": "t", "settings": {"latency_seconds": -1}},
            "invalid_layer_config",
            "config.model",
        ),
        (
            {**ACME, "settings": {"temperature": "hot"}},
            "invalid_model_setting",
            "config.model.settings",
        ),
        (
            {**ACME, "settings": {"temprature": 0.2}},
            "unsupported_model_setting",
            "config.model.settings",
        ),
    ],
)
def test_a_bad_model_layer_config_is_422_at_save(
    api_factory: ApiFactory, model: dict[str, Any], code: str, field: str
) -> None:
    api = api_factory(model_providers={"acme": {"base_url": "http://127.0.0.1:9/v1"}})
    agent = create_agent(api)

    response = api.client.post(
        f"/v1/agents/{agent['id']}/versions",
        json={"config": soul(model=model), "operation": "save_current_version"},
        headers=api.headers(),
    )

    assert_refused(response, code, field)
    assert versions_of(api, agent["id"]) == [1]


@pytest.fixture
def without_ask_human(database_url: str) -> Iterator[Api]:
    """A server whose allow-list lacks `ask_human` (an embedder's choice)."""
    settings = make_settings(database_url)
    default = LayerRegistry.default(settings)
    registry = LayerRegistry(
        [p for type_id, p in default.providers.items() if type_id != "ask_human"],
        model_providers=default.model_providers,
        catalog=default.catalog,
    )
    with TestClient(create_app(settings, registry=registry)) as client:
        key = create_key(database_url, "t1").key
        yield Api(client=client, key=key, database_url=database_url, settings=settings)


def test_a_layer_type_the_server_does_not_allow_is_422_at_save(without_ask_human: Api) -> None:
    api = without_ask_human
    config = soul(human={"contacts": [{"name": "Ops"}]})

    created = api.client.post("/v1/agents", json=agent_body(config=config), headers=api.headers())
    plain = create_agent(api, name="plain")
    saved = api.client.post(
        f"/v1/agents/{plain['id']}/versions",
        json={"config": config, "operation": "save_new_version"},
        headers=api.headers(),
    )

    assert_refused(created, "unknown_layer_type", "config.human.contacts", layer="ask_human")
    assert_refused(saved, "unknown_layer_type", "config.human.contacts", layer="ask_human")
    assert versions_of(api, plain["id"]) == [1]
    names = [item["name"] for item in get_json(api, "/v1/agents")["items"]]
    assert names == ["plain"]


def test_an_inline_binding_agent_is_checked_and_nothing_is_stored(api: Api) -> None:
    response = put_binding(api, inline_binding(config=soul(model=ACME)))

    assert_refused(response, "unknown_model_provider", "agent.config.model.provider")
    missing = api.client.get(binding_path(), headers=api.headers())
    assert error_code(missing) == "binding_not_found"
    listed = get_json(api, "/v1/agents", scope="workflow_only", status=["active", "archived"])
    assert listed["items"] == []


def test_save_as_checks_the_given_config_and_the_copied_one(api_factory: ApiFactory) -> None:
    before = api_factory(model_providers={"acme": {"base_url": "http://127.0.0.1:9/v1"}})
    on_acme = create_agent(before, name="on acme", config=soul(model=ACME))
    before.stop()
    api = api_factory()  # the same database; `acme` is no longer configured
    plain = create_agent(api, name="plain")

    given = api.client.post(
        f"/v1/agents/{plain['id']}/save-as",
        json={"name": "copy 1", "config": soul(model=ACME)},
        headers=api.headers(),
    )
    copied = api.client.post(
        f"/v1/agents/{on_acme['id']}/save-as", json={"name": "copy 2"}, headers=api.headers()
    )
    fine = api.client.post(
        f"/v1/agents/{plain['id']}/save-as", json={"name": "copy 3"}, headers=api.headers()
    )

    assert_refused(given, "unknown_model_provider", "config.model.provider")
    assert_refused(copied, "unknown_model_provider", "config.model.provider")
    assert fine.status_code == 201, fine.text
    names = {item["name"] for item in get_json(api, "/v1/agents")["items"]}
    assert names == {"on acme", "plain", "copy 3"}


def test_an_agent_without_a_model_still_saves(api: Api) -> None:
    agent = create_agent(api, config={"prompt": {"system_prompt": "model later"}})

    assert versions_of(api, agent["id"]) == [1]
