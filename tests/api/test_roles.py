"""Roles: `reader` reads, `runner` also runs and writes, `admin` also manages the tenant's keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import APIRouter

from app.api.edge import StrataRoute
from app.api.roles import route_roles
from app.cli import KeyRole
from app.models import ApiKeyRole
from tests.agents.support import agent_body, create_agent, roster_binding
from tests.api_fixtures import Api, ApiFactory, create_key
from tests.runs.bodies import chat, layer

REPO = Path(__file__).resolve().parents[2]


def _expected_role(method: str, path: str) -> str:
    if path in {"/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/ui"}:
        return "public"
    if path.startswith("/v1/keys"):
        return "admin"
    return "reader" if method == "GET" else "runner"


def test_every_route_declares_the_role_it_needs(api: Api) -> None:
    roles = list(route_roles(api.client.app))  # type: ignore[arg-type]

    assert len(roles) > 30
    for method, path, role in roles:
        assert role == _expected_role(method, path), (method, path, role)


def test_a_route_without_a_role_cannot_be_built() -> None:
    router = APIRouter(route_class=StrataRoute)

    with pytest.raises(TypeError, match="declares no role"):

        @router.get("/forgotten")
        async def forgotten() -> None:
            return None


def test_write_routes_document_403_and_say_their_role(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]

    create = paths["/v1/runs"]["post"]
    listing = paths["/v1/runs"]["get"]
    assert "403" in create["responses"] and "401" in create["responses"]
    assert "`runner` role" in create["description"]
    assert "403" not in listing["responses"]  # any key may read
    assert "`reader` role" in listing["description"]


def test_a_reader_reads_and_changes_nothing(api: Api) -> None:
    run = api.run_to_end(chat())
    agent = create_agent(api)
    reader = api.headers(create_key(api.database_url, "t1", ApiKeyRole.READER).key)
    writes = [
        ("POST", "/v1/runs", chat()),
        ("POST", f"/v1/runs/{run['id']}/cancel", None),
        ("POST", "/v1/sessions/retire", {"workflow_run_id": "wr"}),
        ("POST", "/v1/agents", agent_body("another")),
        ("PATCH", f"/v1/agents/{agent['id']}", {"description": "changed"}),
        ("POST", f"/v1/agents/{agent['id']}/archive", None),
        ("PUT", "/v1/workflows/wf/versions/1/nodes/n/binding", roster_binding(agent["id"])),
        (
            "POST",
            "/v1/workflow-runs/wr/nodes/n/runs",
            {"workflow_id": "wf", "workflow_version": "1", "node_execution_id": "e"},
        ),
        ("GET", "/v1/keys", None),
    ]

    for method, path, body in writes:
        response = api.client.request(method, path, json=body, headers=reader)
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "forbidden"
        assert error["details"]["key_role"] == "reader"
    for path in ("/v1/runs", f"/v1/runs/{run['id']}/events", "/v1/agents", "/v1/sessions"):
        assert api.client.get(path, headers=reader).status_code == 200, path
    assert len(api.client.get("/v1/runs", headers=reader).json()["items"]) == 1
    assert api.client.get(f"/v1/agents/{agent['id']}", headers=reader).json()["status"] == "active"


def test_a_runner_runs_but_does_not_manage_keys(api: Api) -> None:
    runner = api.headers(create_key(api.database_url, "t1", ApiKeyRole.RUNNER).key)

    created = api.client.post("/v1/runs", json=chat(), headers=runner)
    keys = api.client.get("/v1/keys", headers=runner)
    new_key = api.client.post("/v1/keys", json={"role": "admin"}, headers=runner)

    assert created.status_code == 202
    assert keys.status_code == 403
    assert new_key.status_code == 403
    assert len(api.client.get("/v1/keys", headers=api.headers()).json()["items"]) == 2


# --- /v1/keys ---------------------------------------------------------------------------------


def test_an_admin_creates_a_key_that_is_shown_once_and_works(api: Api) -> None:
    created = api.client.post(
        "/v1/keys", json={"role": "reader", "label": "dashboard"}, headers=api.headers()
    )

    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith(key["prefix"]) and key["role"] == "reader"
    listed = api.client.get("/v1/keys", headers=api.headers())
    assert key["key"] not in listed.text
    mine = next(item for item in listed.json()["items"] if item["id"] == key["id"])
    assert mine == {k: v for k, v in key.items() if k != "key"}
    assert api.client.get("/v1/runs", headers=api.headers(key["key"])).status_code == 200
    assert (
        api.client.post("/v1/runs", json=chat(), headers=api.headers(key["key"])).status_code == 403
    )


def test_a_revoked_key_stops_working_at_once(api: Api) -> None:
    key = api.client.post("/v1/keys", json={"role": "runner"}, headers=api.headers()).json()
    assert api.client.get("/v1/runs", headers=api.headers(key["key"])).status_code == 200

    revoked = api.client.post(f"/v1/keys/{key['id']}/revoke", headers=api.headers())
    again = api.client.post(f"/v1/keys/{key['id']}/revoke", headers=api.headers())

    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]  # idempotent
    refused = api.client.get("/v1/runs", headers=api.headers(key["key"]))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


def test_an_admin_cannot_see_or_revoke_another_tenants_keys(api: Api) -> None:
    other = create_key(api.database_url, "t2")

    listed = api.client.get("/v1/keys", headers=api.headers()).json()["items"]
    revoked = api.client.post(f"/v1/keys/{other.key_id}/revoke", headers=api.headers())

    assert str(other.key_id) not in [item["id"] for item in listed]
    assert revoked.status_code == 404
    assert revoked.json()["error"]["code"] == "key_not_found"
    assert api.client.get("/v1/runs", headers=api.headers(other.key)).status_code == 200


def test_revoking_the_last_admin_key_is_refused(api: Api) -> None:
    mine = api.client.get("/v1/keys", headers=api.headers()).json()["items"][0]

    refused = api.client.post(f"/v1/keys/{mine['id']}/revoke", headers=api.headers())

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "last_admin_key"
    assert api.client.get("/v1/runs", headers=api.headers()).status_code == 200
    second = api.client.post("/v1/keys", json={"role": "admin"}, headers=api.headers()).json()
    allowed = api.client.post(f"/v1/keys/{mine['id']}/revoke", headers=api.headers(second["key"]))
    assert allowed.status_code == 200
    assert api.client.get("/v1/runs", headers=api.headers()).status_code == 401


def test_an_unknown_provider_error_names_no_configured_provider(api_factory: ApiFactory) -> None:
    api = api_factory(
        model_providers={"acme-private-gateway": {"base_url": "http://127.0.0.1:9/v1"}}
    )

    response = api.post_run(
        {"composition": {"layers": [layer("llm", "llm.openai", {"provider": "x", "model": "m"})]}}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_model_provider"
    assert "acme-private-gateway" not in response.text


# --- the command line -------------------------------------------------------------------------


def test_the_cli_roles_are_the_api_roles() -> None:
    assert [role.value for role in KeyRole] == [role.value for role in ApiKeyRole]


def test_the_cli_creates_a_reader_key_and_refuses_unknown_roles(api: Api) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_DATABASE_URL"] = api.database_url

    def keys_create(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "keys", "create", "--tenant", "t1", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    created = keys_create("--role", "reader")
    member = keys_create("--role", "member")

    assert created.returncode == 0, created.stderr
    assert "role=reader" in created.stderr
    key = created.stdout.strip()
    assert api.client.get("/v1/runs", headers=api.headers(key)).status_code == 200
    assert api.client.post("/v1/runs", json=chat(), headers=api.headers(key)).status_code == 403
    assert member.returncode == 2
    assert "member" in member.stderr
