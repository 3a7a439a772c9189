"""schemathesis against a live server: the OpenAPI document tells the truth.

The whole document of a real server (API + worker, this test's database) is fuzzed by the
schemathesis CLI in a subprocess, authenticated with an admin key, with a bounded number of
cases per operation: no 5xx, every status and content type documented, every body matching its
schema, and bodies that break the schema refused. The request examples in the document (a
`plain.prompt` + `pydantic_ai.history` + `llm.test` composition) create runs that execute.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2

from tests.agents.support import create_agent
from tests.api_fixtures import Api
from tests.runs.bodies import chat
from tests.server_fixtures import LiveServerFactory

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
MAX_EXAMPLES = 8
TIMEOUT_SECONDS = 240


def test_schemathesis_finds_no_failure(
    live_server_factory: LiveServerFactory, tmp_path: Path
) -> None:
    server = live_server_factory(metrics_token="operator-token", wait_max_seconds=1.0)
    schemathesis = Path(sys.executable).parent / "schemathesis"

    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{server.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {server.key}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            # one worker: hypothesis's lambda descriptions call ast.parse, which is not
            # thread-safe on CPython 3.11 ("AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--seed",
            "20261202",
            "--request-timeout",
            "30",
            "--no-color",
            "--suppress-health-check",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    with httpx2.Client(base_url=server.base_url, headers=server.headers()) as client:
        runs = client.get("/v1/runs", params={"status": "succeeded"}).json()["items"]
    assert runs, "no generated run executed: the examples in the OpenAPI document do not run"


def test_a_bool_where_a_number_is_declared_is_422(api: Api) -> None:
    retire = api.client.post(
        "/v1/sessions/retire",
        json={"workflow_run_id": "wr", "wait_seconds": False},
        headers=api.headers(),
    )
    run = api.post_run({**chat(), "limits": {"max_model_requests": True}})

    assert retire.status_code == 422
    assert run.status_code == 422
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_what_patch_may_not_null_the_schema_does_not_declare_nullable(api: Api) -> None:
    agent = create_agent(api)
    schema = api.client.get("/openapi.json").json()["components"]["schemas"]["AgentUpdate"]

    response = api.client.patch(
        f"/v1/agents/{agent['id']}", json={"description": None}, headers=api.headers()
    )

    assert response.status_code == 422
    assert schema["properties"]["description"]["type"] == "string"
    assert "anyOf" not in schema["properties"]["description"]
    assert schema["properties"]["icon"]["anyOf"][1] == {"type": "null"}  # null clears the icon


def test_every_error_status_a_list_can_answer_is_documented(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]

    bad_cursor = api.client.get("/v1/sessions", params={"cursor": "%%%"}, headers=api.headers())

    assert bad_cursor.status_code == 400
    assert "400" in paths["/v1/sessions"]["get"]["responses"]
