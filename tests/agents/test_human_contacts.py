"""Human contacts are a typed, strict schema (`HumanContact`) in agent and job configs, shown in
the OpenAPI document; contacts stored while they were free-form objects still load."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from app.db import create_engine, create_session_factory, unit_of_work
from app.models import AgentConfigSnapshot, WorkflowAgentNodeBinding
from tests.agents.support import (
    agent_body,
    create_agent,
    get_json,
    job,
    put_binding,
    roster_binding,
    soul,
)
from tests.api_fixtures import Api
from tests.db_fixtures import run_coroutine_blocking

CONTACT = {
    "name": "On-call reviewer",
    "id": "group-7f3a",
    "email": "review@example.com",
    "description": "Approves refunds above 500 EUR; answers within the hour.",
    "metadata": {"channel": "slack", "team": "payments"},
}


def test_a_contact_saves_and_round_trips(api: Api) -> None:
    agent = create_agent(api, config=soul(human={"contacts": [CONTACT, {"name": "Ops"}]}))

    version = get_json(api, f"/v1/agents/{agent['id']}/versions/1")

    assert version["config"]["human"]["contacts"] == [
        CONTACT,
        {"name": "Ops", "id": None, "email": None, "description": None, "metadata": {}},
    ]


def test_a_jobs_contacts_save_and_round_trip_in_a_binding(api: Api) -> None:
    agent = create_agent(api)

    response = put_binding(
        api, roster_binding(agent["id"], node_job_config=job(human_contacts=[CONTACT]))
    )

    assert response.status_code == 201, response.text
    assert response.json()["node_job_config"]["human_contacts"] == [CONTACT]


@pytest.mark.parametrize(
    ("contact", "where"),
    [
        ({"name": "Ops", "phone": "+49 30 1234"}, "phone"),  # unknown field
        ({"email": "ops@example.com"}, "name"),  # no name
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"name": "Ops", "email": "not an address"}, "email"),
        ({"name": "Ops", "metadata": "slack"}, "metadata"),
        ({"name": "Ops", "metadata": {"api_key": "sk-1"}}, "metadata"),  # a secret-like key
        ("ops@example.com", None),
    ],
)
def test_a_bad_contact_is_422_and_nothing_is_stored(
    api: Api, contact: Any, where: str | None
) -> None:
    response = api.client.post(
        "/v1/agents",
        json=agent_body(config=soul(human={"contacts": [contact]})),
        headers=api.headers(),
    )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "request_invalid"
    locations = [item["loc"] for item in error["details"]["errors"]]
    prefix = ["body", "config", "human", "contacts", 0]
    assert any(loc[: len(prefix)] == prefix for loc in locations), locations
    if where is not None:
        assert any(where in loc for loc in locations), locations
    assert get_json(api, "/v1/agents")["items"] == []


def test_a_bad_job_contact_is_422(api: Api) -> None:
    agent = create_agent(api)

    response = put_binding(
        api,
        roster_binding(agent["id"], node_job_config=job(human_contacts=[{"who": "ops"}])),
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "request_invalid"


def test_the_openapi_document_types_human_contacts(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]

    contact = schemas["HumanContact"]
    assert set(contact["properties"]) == {"name", "id", "email", "description", "metadata"}
    assert contact["required"] == ["name"]
    assert contact["additionalProperties"] is False
    assert contact["examples"] == [CONTACT]
    assert all(prop.get("description") for prop in contact["properties"].values())
    assert "ask_human" in contact["description"]
    contacts = schemas["HumanConfig"]["properties"]["contacts"]
    assert contacts["items"] == {"$ref": "#/components/schemas/HumanContact"}
    job_contacts = schemas["WorkflowNodeJobConfig"]["properties"]["human_contacts"]
    assert job_contacts["items"] == {"$ref": "#/components/schemas/HumanContact"}


LEGACY = [
    {"email": "ops@example.com", "slack": "#ops"},
    {"name": "Lead", "phone": "+49 30 1234", "metadata": {"team": "a"}},
    {"name": 7, "id": "u-1"},
    {"name": "Bad mail", "email": "nope", "tags": ["x"]},
    {},
]
"""Contacts as a version saved before the schema could hold them (any object)."""

LEGACY_READ = [
    {
        "name": "ops@example.com",
        "id": None,
        "email": "ops@example.com",
        "description": None,
        "metadata": {"slack": "#ops"},
    },
    {
        "name": "Lead",
        "id": None,
        "email": None,
        "description": None,
        "metadata": {"team": "a", "phone": "+49 30 1234"},
    },
    {"name": "u-1", "id": "u-1", "email": None, "description": None, "metadata": {"name": 7}},
    {
        "name": "Bad mail",
        "id": None,
        "email": None,
        "description": None,
        "metadata": {"email": "nope", "tags": ["x"]},
    },
    {"name": "unnamed contact", "id": None, "email": None, "description": None, "metadata": {}},
]


def _rewrite(database_url: str, table: Any, row_id: str, column: str, value: Any) -> None:
    """Overwrite one JSON column as an older release could have stored it."""

    async def _write() -> None:
        engine = create_engine(database_url)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                await session.execute(
                    sa.update(table).where(table.c.id == uuid.UUID(row_id)).values({column: value})
                )
        finally:
            await engine.dispose()

    run_coroutine_blocking(_write)


def test_contacts_stored_before_the_schema_still_load_and_run(api: Api) -> None:
    config = soul(
        model={"provider": "test", "model": "t", "settings": {"call_tools": ["ask_human"]}},
        human={"contacts": [{"name": "placeholder"}]},
    )
    agent = create_agent(api, config=config)
    binding = put_binding(api, roster_binding(agent["id"], app_id="app-1")).json()
    stored_soul = {**config, "human": {"contacts": LEGACY, "tools": []}}
    _rewrite(
        api.database_url,
        AgentConfigSnapshot.__table__,
        agent["active_config_snapshot_id"],
        "config",
        stored_soul,
    )
    _rewrite(
        api.database_url,
        WorkflowAgentNodeBinding.__table__,
        binding["id"],
        "node_job_config",
        {**job(), "human_contacts": LEGACY[:2]},
    )

    version = get_json(api, f"/v1/agents/{agent['id']}/versions/1")
    read_binding = get_json(api, "/v1/workflows/wf-1/versions/draft/nodes/node-1/binding")
    run = api.client.post(
        "/v1/workflow-runs/wr-legacy/nodes/node-1/runs",
        json={"workflow_id": "wf-1", "workflow_version": "draft", "node_execution_id": "ex-1"},
        headers=api.headers(),
    )

    assert version["config"]["human"]["contacts"] == LEGACY_READ
    assert read_binding["node_job_config"]["human_contacts"] == LEGACY_READ[:2]
    assert run.status_code == 202, run.text
    paused = api.wait(run.json()["id"])
    assert paused["status"] == "paused", paused  # the ask_human layer is there
    assert paused["deferred_tool_call"]["tool_name"] == "ask_human"
