"""`tools.http`: runs call tools hosted by the caller, over signed HTTP, at a real endpoint.

The endpoint (`tests.tool_servers.FakeToolEndpoint`) checks every request with the verification
function printed in docs/tools-http.md and rejects what does not verify.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.api_fixtures import Api, ApiFactory
from tests.fake_anthropic import FakeAnthropic
from tests.runs.bodies import layer
from tests.tool_servers import FakeToolEndpoint, documented_verifier
from tests.tools.bodies import (
    closed_port,
    events_of,
    history_tool_returns,
    llm_test_layer,
    tool_run,
)

ORDER_TOOL = {
    "name": "lookup_order",
    "description": "Look up an order by its id.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
}


def http_layer(*tools: dict[str, Any], name: str = "engine_tools", **config: Any) -> dict[str, Any]:
    return layer(
        name,
        "tools.http",
        {"endpoint": "engine", "tools": list(tools) or [ORDER_TOOL], **config},
        deps={"execution_context": "execution_context"},
    )


def start(api_factory: ApiFactory, endpoint: FakeToolEndpoint, **overrides: Any) -> Api:
    return api_factory(tool_endpoints={"engine": endpoint.settings()}, **overrides)


def test_a_run_calls_the_callers_tool_with_a_signed_request(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    api = start(api_factory, tool_endpoint)
    llm = llm_test_layer(
        call_tools=["lookup_order"], tool_args={"lookup_order": {"order_id": "A-17"}}
    )

    run = api.run_to_end(
        tool_run(http_layer(), llm=llm, context={"workflow_run_id": "wr-9", "node_id": "n-1"})
    )

    assert run["status"] == "succeeded", run
    [request] = tool_endpoint.requests
    assert request.verified
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-strata-signature"].startswith("sha256=")
    assert abs(int(request.headers["x-strata-timestamp"]) - time.time()) < 60
    events = api.events(run["id"])
    [call] = events_of(events, "tool_call")
    sent = request.json
    assert sent["run_id"] == run["id"]
    assert sent["tool_call_id"] == call["tool_call_id"]
    assert sent["tool_name"] == "lookup_order"
    assert sent["args"] == {"order_id": "A-17"}
    context = sent["execution_context"]
    assert context["run_id"] == run["id"]
    assert context["workflow_run_id"] == "wr-9"
    assert context["node_id"] == "n-1"
    assert context["tenant_id"]  # set by the server: the caller's tenant
    [result] = events_of(events, "tool_result")
    assert result["outcome"] == "success"
    assert json.loads(result["content"]) == {"order_id": "A-17", "status": "shipped"}
    [returned] = history_tool_returns(run)
    assert returned["content"] == {"order_id": "A-17", "status": "shipped"}


def test_the_result_reaches_an_http_model(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint, fake_anthropic: FakeAnthropic
) -> None:
    api = start(
        api_factory, tool_endpoint, model_providers={"claude": fake_anthropic.provider("sk-a")}
    )
    llm = layer("llm", "llm.anthropic", {"provider": "claude", "model": "claude-test"})

    run = api.run_to_end(tool_run(http_layer(), llm=llm, user="Where is my order?"))

    assert run["status"] == "succeeded", run
    assert run["output"] == "fake reply to: Where is my order?"
    first, second = fake_anthropic.requests
    assert first.tool_names == ["lookup_order"]
    assert first.tools[0]["input_schema"]["required"] == ["order_id"]
    [result] = second.tool_results
    assert json.loads(second.result_text(result)) == {"order_id": "test", "status": "shipped"}
    assert [r.json["args"] for r in tool_endpoint.requests] == [{"order_id": "test"}]


def test_an_integer_beyond_64_bits_in_a_result_is_kept_as_its_digits(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    # Valid JSON that orjson, which writes the JSON columns, cannot encode: stored as it was,
    # it failed the run's terminal write on every retry and the run stayed running.
    api = start(api_factory, tool_endpoint)
    llm = llm_test_layer(call_tools=["huge_number"], reply="Noted.")
    spec = {"name": "huge_number", "description": "A very large number."}

    run = api.run_to_end(tool_run(http_layer(spec), llm=llm))

    assert run["status"] == "succeeded", run
    [result] = events_of(api.events(run["id"]), "tool_result")
    assert result["outcome"] == "success"
    assert json.loads(result["content"]) == {"n": "123456789012345678901234567890"}
    [returned] = history_tool_returns(run)
    assert returned["content"] == {"n": "123456789012345678901234567890"}


# Only the timeout case uses a short timeout: on a loaded CI machine a fast answer can take
# longer than half a second, and the other cases are about what the endpoint answered.
FAILURES = [
    pytest.param("fail", {}, 30, "answered HTTP 500: inventory database is down", id="http-500"),
    pytest.param("not_json", {}, 30, "answered with a body that is not JSON", id="not-json"),
    pytest.param(
        "deep", {"depth": 300}, 30, "answered with JSON nested deeper than 64 levels", id="deep"
    ),
    pytest.param(  # deeper than Python's JSON parser goes
        "deep", {"depth": 5000}, 30, "answered with JSON nested deeper than 64", id="too-deep"
    ),
    pytest.param("slow", {"seconds": 3}, 0.5, "did not answer within 0.5 seconds", id="timeout"),
    pytest.param("missing", {}, 30, "answered HTTP 404", id="http-404"),
]


@pytest.mark.parametrize(("tool", "args", "timeout", "message"), FAILURES)
def test_a_failing_call_is_reported_to_the_model_and_the_run_goes_on(
    api_factory: ApiFactory,
    tool_endpoint: FakeToolEndpoint,
    tool: str,
    args: dict[str, Any],
    timeout: float,
    message: str,
) -> None:
    api = start(api_factory, tool_endpoint)
    llm = llm_test_layer(call_tools=[tool], tool_args={tool: args}, reply="Sorry.")
    spec = {"name": tool, "description": "A tool."}

    run = api.run_to_end(tool_run(http_layer(spec, timeout_seconds=timeout), llm=llm))

    assert run["status"] == "succeeded", run
    assert run["output"] == "Sorry."
    [result] = events_of(api.events(run["id"]), "tool_result")
    assert result["outcome"] == "failed"
    assert f"the tool endpoint 'engine' {message}" in result["content"]
    assert tool_endpoint.url not in result["content"]
    [returned] = history_tool_returns(run)
    assert message in json.dumps(returned["content"])


def test_a_request_signed_with_another_secret_is_rejected_by_the_endpoint(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    api = api_factory(tool_endpoints={"engine": tool_endpoint.settings(secret="not-the-secret")})
    llm = llm_test_layer(call_tools=["lookup_order"], reply="Sorry.")

    run = api.run_to_end(tool_run(http_layer(), llm=llm))

    assert run["status"] == "succeeded", run
    [request] = tool_endpoint.requests
    assert not request.verified
    [result] = events_of(api.events(run["id"]), "tool_result")
    assert result["outcome"] == "failed"
    assert "answered HTTP 401" in result["content"]


def test_an_unreachable_endpoint_is_reported_to_the_model(api_factory: ApiFactory) -> None:
    url = f"http://127.0.0.1:{closed_port()}/tools"
    api = api_factory(tool_endpoints={"engine": {"url": url, "secret": "s"}})
    llm = llm_test_layer(call_tools=["lookup_order"], reply="Sorry.")

    run = api.run_to_end(tool_run(http_layer(), llm=llm))

    assert run["status"] == "succeeded", run
    [result] = events_of(api.events(run["id"]), "tool_result")
    assert result["outcome"] == "failed"
    assert "the tool endpoint 'engine' could not be reached (ConnectError)" in result["content"]


def test_the_documented_verifier_accepts_a_real_request_and_nothing_else(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    api = start(api_factory, tool_endpoint)
    llm = llm_test_layer(call_tools=["lookup_order"])
    run = api.run_to_end(tool_run(http_layer(), llm=llm))
    assert run["status"] == "succeeded", run
    [request] = tool_endpoint.requests
    verify = documented_verifier()
    secret, headers, body = tool_endpoint.secret, request.headers, request.body
    timestamp = int(headers["x-strata-timestamp"])

    assert verify(secret, headers, body)
    assert not verify("another-secret", headers, body)
    assert not verify(secret, headers, body.replace(b"lookup_order", b"lookup_ordex"))
    assert not verify(secret, {**headers, "x-strata-timestamp": str(timestamp + 1)}, body)
    assert not verify(secret, headers, body, now=timestamp + 301)  # a replay, too late
    assert not verify(secret, {k: v for k, v in headers.items() if "signature" not in k}, body)


def test_tool_results_are_cut_in_events_but_not_for_the_model(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    api = start(api_factory, tool_endpoint, event_tool_result_max_chars=100)
    llm = llm_test_layer(call_tools=["report"], tool_args={"report": {"size": 5000}})
    spec = {"name": "report", "parameters": {"type": "object", "properties": {}}}

    run = api.run_to_end(tool_run(http_layer(spec), llm=llm))

    assert run["status"] == "succeeded", run
    [result] = events_of(api.events(run["id"]), "tool_result")
    full = json.dumps({"text": "x" * 5000}, separators=(",", ":"))
    assert result["truncated"] is True
    assert result["content_chars"] == len(full)
    assert result["content"] == full[:100]
    [returned] = history_tool_returns(run)
    assert returned["content"] == {"text": "x" * 5000}


def _post(api: Api, *tools: dict[str, Any], **config: Any) -> Any:
    return api.post_run(tool_run(http_layer(*tools, **config)))


@pytest.mark.parametrize(
    ("tools", "code", "field"),
    [
        pytest.param([{"name": "has space"}], "invalid_tool_name", "tools.0.name", id="bad-name"),
        pytest.param(
            [{"name": "a"}, {"name": "b"}, {"name": "a"}],
            "duplicate_tool_name",
            "tools",
            id="duplicate",
        ),
        pytest.param(
            [{"name": "a", "parameters": {"type": "string"}}],
            "invalid_tool_parameters",
            "tools.0.parameters",
            id="not-an-object",
        ),
        pytest.param(
            [
                ORDER_TOOL,
                {
                    "name": "a",
                    "parameters": {
                        "type": "object",
                        "properties": {"x": {"$ref": "https://example.com/schema.json"}},
                    },
                },
            ],
            "invalid_tool_parameters",
            "tools.1.parameters",
            id="remote-ref",
        ),
        pytest.param(
            [{"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": 5}}}}],
            "invalid_tool_parameters",
            "tools.0.parameters",
            id="invalid-schema",
        ),
        pytest.param(
            [
                {
                    "name": "a",
                    "parameters": {
                        "type": "object",
                        "description": "x" * 40_000,
                    },
                }
            ],
            "invalid_tool_parameters",
            "tools.0.parameters",
            id="too-large",
        ),
    ],
)
def test_bad_tool_definitions_are_rejected_with_precise_codes(
    api_factory: ApiFactory,
    tool_endpoint: FakeToolEndpoint,
    tools: list[dict[str, Any]],
    code: str,
    field: str,
) -> None:
    api = start(api_factory, tool_endpoint)

    response = _post(api, *tools)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["details"] == {
        "layer": "engine_tools",
        "field": f"composition.layers.config.{field}",
    }
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_a_deeply_nested_schema_is_rejected(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    api = start(api_factory, tool_endpoint)
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"x": schema}}

    response = _post(api, {"name": "deep", "parameters": schema})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_tool_parameters"
    assert "deeper than" in response.json()["error"]["message"]


def test_an_unknown_endpoint_is_rejected(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    api = start(api_factory, tool_endpoint)

    response = _post(api, endpoint="elsewhere")

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_tool_endpoint"
    assert "'elsewhere'" in error["message"]
    assert error["details"] == {
        "layer": "engine_tools",
        "field": "composition.layers.config.endpoint",
    }
    assert tool_endpoint.requests == []


def test_the_execution_context_dependency_is_required(
    api_factory: ApiFactory, tool_endpoint: FakeToolEndpoint
) -> None:
    api = start(api_factory, tool_endpoint)
    unwired = layer("engine_tools", "tools.http", {"endpoint": "engine", "tools": [ORDER_TOOL]})

    response = api.post_run(tool_run(unwired))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "missing_dependency"
    assert error["details"]["layer"] == "engine_tools"
