"""Request builders and small HTTP helpers for the agents and bindings tests."""

from __future__ import annotations

from typing import Any

from tests.api_fixtures import Api


def soul(system_prompt: str = "You are careful.", **fields: Any) -> dict[str, Any]:
    """A valid `AgentSoulConfig` body."""
    return {
        "prompt": {"system_prompt": system_prompt},
        "model": {"provider": "test", "model": "test"},
        **fields,
    }


def job(prompt: str = "Summarise the input.", **fields: Any) -> dict[str, Any]:
    """A valid `WorkflowNodeJobConfig` body."""
    return {"workflow_prompt": prompt, **fields}


def agent_body(name: str = "researcher", scope: str = "roster", **fields: Any) -> dict[str, Any]:
    return {"name": name, "scope": scope, "config": soul(), **fields}


def create_agent(api: Api, name: str = "researcher", **fields: Any) -> dict[str, Any]:
    response = api.client.post("/v1/agents", json=agent_body(name, **fields), headers=api.headers())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def save_version(
    api: Api,
    agent_id: str,
    config: dict[str, Any],
    operation: str = "save_new_version",
    **fields: Any,
) -> dict[str, Any]:
    response = api.client.post(
        f"/v1/agents/{agent_id}/versions",
        json={"config": config, "operation": operation, **fields},
        headers=api.headers(),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def get_json(api: Api, path: str, key: str | None = None, **params: Any) -> Any:
    response = api.client.get(path, params=params, headers=api.headers(key))
    assert response.status_code == 200, response.text
    return response.json()


def error_code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


BINDING = "/v1/workflows/wf-1/versions/{version}/nodes/{node}/binding"


def binding_path(version: str = "draft", node: str = "node-1") -> str:
    return BINDING.format(version=version, node=node)


def roster_binding(agent_id: str, snapshot_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "binding_type": "roster_agent",
        "agent_id": agent_id,
        "snapshot_id": snapshot_id,
        "app_id": "app-1",
        "node_job_config": job(),
        **fields,
    }


def inline_binding(
    name: str = "inline helper", config: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "binding_type": "inline_agent",
        "agent": {"name": name, "config": config or soul()},
        "app_id": "app-1",
        "node_job_config": job(),
        **fields,
    }


def put_binding(
    api: Api, body: dict[str, Any], version: str = "draft", node: str = "node-1"
) -> Any:
    return api.client.put(binding_path(version, node), json=body, headers=api.headers())
