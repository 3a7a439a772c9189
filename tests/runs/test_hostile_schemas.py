"""Regexes in request schemas run on a linear-time engine; ones it cannot run are refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic_ai import ModelRetry

from app.layers.output import JsonSchemaOutputConfig, JsonSchemaOutputLayer
from tests.api_fixtures import Api, create_key
from tests.fleet.processes import Fleet
from tests.runs.bodies import chat, layer

CATASTROPHIC = "^(a+)+$"  # exponential for a backtracking engine on "aaaa…a!"


def _with_output(schema: dict[str, Any], reply: Any) -> dict[str, Any]:
    body = chat("answer")
    body["composition"]["layers"][2]["config"] = {"reply": json.dumps(reply)}
    body["composition"]["layers"].append(
        layer("output", "output.json_schema", {"json_schema": schema})
    )
    return body


@pytest.fixture
def server_process(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`strata serve` (API + worker) in a child process, and a key: `(base_url, key)`.

    A child process and not `live_server`'s thread: a backtracking regex holds the interpreter
    lock, so a server thread stuck in one would stall this test process too instead of failing
    the test.
    """
    fleet = Fleet(database_url=database_url, directory=tmp_path)
    try:
        server = fleet.start_server()
        yield server.base_url, create_key(database_url, "t1").key
    finally:
        fleet.stop_all()


def test_a_catastrophic_pattern_does_not_stall_the_server(
    server_process: tuple[str, str],
) -> None:
    base_url, key = server_process
    schema = {
        "type": "object",
        "properties": {"word": {"type": "string", "pattern": CATASTROPHIC}},
        "required": ["word"],
    }
    body = _with_output(schema, {"word": "a" * 40 + "!"})

    headers = {"Authorization": f"Bearer {key}"}
    with httpx2.Client(base_url=base_url, headers=headers) as client:
        created = client.post("/v1/runs", json=body)
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        latencies: list[float] = []
        status = "queued"
        started = time.monotonic()
        # probe for a second at least, and until the run has ended
        while time.monotonic() - started < 1.0 or status not in {"succeeded", "failed"}:
            assert time.monotonic() - started < 30, f"the run did not end: {status}"
            before = time.perf_counter()
            health = client.get("/healthz", timeout=5.0)
            latencies.append(time.perf_counter() - before)
            assert health.status_code == 200
            status = client.get(f"/v1/runs/{run_id}", timeout=5.0).json()["status"]
            time.sleep(0.05)
        run = client.get(f"/v1/runs/{run_id}").json()

    assert max(latencies) < 0.1, latencies
    # the answer never fits the schema, so the model is asked to retry until it gives up
    assert run["status"] == "failed", run
    assert run["error_type"] == "model_error"


@pytest.mark.parametrize(
    ("schema", "schema_path"),
    [
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "string", "pattern": r"(a)\1"}}},
            "/properties/a/pattern",
            id="backreference",
        ),
        pytest.param(
            {"type": "object", "patternProperties": {"^(?!x)": {}}},
            "/patternProperties/^(?!x)",
            id="lookahead-in-patternProperties",
        ),
        pytest.param(
            {"type": "object", "propertyNames": {"pattern": "(?<=a)b"}},
            "/propertyNames/pattern",
            id="lookbehind-in-propertyNames",
        ),
        pytest.param(
            {"type": "object", "properties": {"w": {"pattern": "(x{1000}){1000}"}}},
            "/properties/w/pattern",
            id="too-large-to-compile",
        ),
        pytest.param(
            {
                "type": "object",
                "$defs": {"word": {"type": "string", "pattern": r"(\w)\1"}},
                "properties": {"w": {"$ref": "#/$defs/word"}},
            },
            "/$defs/word/pattern",
            id="backreference-behind-a-ref",
        ),
    ],
)
def test_a_pattern_the_linear_engine_cannot_run_is_422(
    api: Api, schema: dict[str, Any], schema_path: str
) -> None:
    response = api.post_run(_with_output(schema, {}))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_pattern"
    assert error["details"]["layer"] == "output"
    assert error["details"]["schema_path"] == schema_path
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_a_pattern_the_linear_engine_runs_validates_the_output(api: Api) -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": r"^[A-Z]{3}-\d{2}$"}},
        "required": ["code"],
    }

    good = api.run_to_end(_with_output(schema, {"code": "ABC-12"}))
    bad = api.run_to_end(_with_output(schema, {"code": "abc-12"}))

    assert good["status"] == "succeeded", good
    assert good["output"] == {"code": "ABC-12"}
    assert bad["status"] == "failed"


def test_the_retry_message_names_each_violation_and_where() -> None:
    config = JsonSchemaOutputConfig(
        json_schema={
            "type": "object",
            "properties": {"days": {"type": "integer"}, "city": {"pattern": "^[A-Z]"}},
            "required": ["days", "city"],
        }
    )
    output = JsonSchemaOutputLayer.from_config(config)

    with pytest.raises(ModelRetry) as raised:
        output.validate_output({"days": "many"})
    assert output.validate_output({"days": 3, "city": "Lisbon"}) == {"days": 3, "city": "Lisbon"}

    message = str(raised.value)
    assert message.startswith("the output does not match the JSON schema: ")
    assert '(root): "city" is a required property' in message
    assert 'days: "many" is not of type "integer"' in message
