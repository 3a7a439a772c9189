"""`tools.mcp`: runs use the tools of a real MCP server (built with the `mcp` SDK) over HTTP.

The server is named in the server configuration (`mcp_servers`); requests only name it. Each
test posts runs through the HTTP API and checks what a user sees (status, events, snapshot,
errors) and what the MCP server and the model received.
"""

from __future__ import annotations

import json
from typing import Any

from tests.api_fixtures import Api, ApiFactory
from tests.fake_openai import FakeOpenAI
from tests.runs.bodies import layer
from tests.tool_servers import FakeMcp
from tests.tools.bodies import (
    closed_port,
    events_of,
    history_tool_returns,
    llm_test_layer,
    tool_run,
)

TOKEN = "Bearer mcp-token-for-tests"


def mcp_layer(name: str = "weather", **config: Any) -> dict[str, Any]:
    return layer(name, "tools.mcp", {"server": "weather", **config})


def start(api_factory: ApiFactory, fake_mcp: FakeMcp, **overrides: Any) -> Api:
    return api_factory(
        mcp_servers={"weather": fake_mcp.settings({"Authorization": TOKEN})}, **overrides
    )


def test_a_run_calls_an_mcp_tool_and_the_model_gets_its_result(
    api_factory: ApiFactory, fake_mcp: FakeMcp
) -> None:
    api = start(api_factory, fake_mcp)
    llm = llm_test_layer(
        call_tools=["forecast"], tool_args={"forecast": {"city": "Oslo", "days": 2}}
    )

    run = api.run_to_end(tool_run(mcp_layer(), llm=llm))

    assert run["status"] == "succeeded", run
    assert fake_mcp.calls == [("forecast", {"city": "Oslo", "days": 2})]
    assert {h.get("authorization") for h in fake_mcp.headers} == {TOKEN}
    [returned] = history_tool_returns(run)
    assert returned["tool_name"] == "forecast"
    assert returned["content"] == "sunny in Oslo for 2 day(s)"
    events = api.events(run["id"])
    [call] = events_of(events, "tool_call")
    [result] = events_of(events, "tool_result")
    assert call["tool_name"] == "forecast"
    assert call["args"] == {"city": "Oslo", "days": 2}
    assert result == {
        "tool_call_id": call["tool_call_id"],
        "tool_name": "forecast",
        "outcome": "success",
        "content": "sunny in Oslo for 2 day(s)",
        "truncated": False,
    }
    types = [event["type"] for event in events]
    assert types.index("tool_call") < types.index("tool_result") < types.index("run_succeeded")


def test_an_http_model_sees_the_allowed_prefixed_tools_and_their_results(
    api_factory: ApiFactory, fake_mcp: FakeMcp, fake_openai: FakeOpenAI
) -> None:
    api = start(api_factory, fake_mcp, model_providers={"fake": fake_openai.provider("sk-x")})
    llm = layer("llm", "llm.openai", {"provider": "fake", "model": "gpt-test"})

    run = api.run_to_end(
        tool_run(mcp_layer(tools=["forecast"], tool_prefix="wx"), user="Weather?", llm=llm)
    )

    assert run["status"] == "succeeded", run
    assert run["output"] == "fake reply to: Weather?"
    first, second = fake_openai.requests
    assert first.tool_names == ["wx_forecast"]  # `explode` is not on the allow-list
    assert first.tools[0]["function"]["parameters"]["required"] == ["city"]
    [result] = second.tool_results
    assert result["content"] == "sunny in test for 1 day(s)"
    assert fake_mcp.calls == [("forecast", {"city": "test", "days": 1})]


def test_a_failing_mcp_tool_is_reported_to_the_model_and_the_run_goes_on(
    api_factory: ApiFactory, fake_mcp: FakeMcp
) -> None:
    api = start(api_factory, fake_mcp)
    llm = llm_test_layer(call_tools=["explode"], reply="I could not get the weather.")

    run = api.run_to_end(tool_run(mcp_layer(), llm=llm))

    assert run["status"] == "succeeded", run
    assert run["output"] == "I could not get the weather."
    assert fake_mcp.calls == [("explode", {"reason": "test"})]
    [result] = events_of(api.events(run["id"]), "tool_result")
    assert result["outcome"] == "retried"  # pydantic-ai's MCP default: the model may try again
    assert "the weather service exploded: test" in result["content"]
    [returned] = history_tool_returns(run)
    assert "the weather service exploded: test" in json.dumps(returned["content"])


def test_a_call_slower_than_the_timeout_is_reported_to_the_model(
    api_factory: ApiFactory, fake_mcp: FakeMcp
) -> None:
    api = start(api_factory, fake_mcp)
    llm = llm_test_layer(call_tools=["slow"], tool_args={"slow": {"seconds": 3}}, reply="Too slow.")

    run = api.run_to_end(tool_run(mcp_layer(timeout_seconds=0.5), llm=llm))

    assert run["status"] == "succeeded", run
    assert run["output"] == "Too slow."
    [result] = events_of(api.events(run["id"]), "tool_result")
    assert result["outcome"] == "retried"
    assert "timed out" in result["content"]


def test_a_resumed_run_connects_again_and_the_snapshot_holds_nothing_of_the_connection(
    api_factory: ApiFactory, fake_mcp: FakeMcp
) -> None:
    api = start(api_factory, fake_mcp)
    llm = llm_test_layer(call_tools=["forecast"], tool_args={"forecast": {"city": "Rome"}})

    first = api.run_to_end(tool_run(mcp_layer(), llm=llm))
    assert first["status"] == "succeeded", first
    requests_of_first = len(fake_mcp.headers)
    second = api.run_to_end(
        tool_run(mcp_layer(), llm=llm, user="And now?", snapshot=first["session_snapshot"])
    )

    assert second["status"] == "succeeded", second
    assert fake_mcp.calls == [("forecast", {"city": "Rome", "days": 1})] * 2
    assert len(fake_mcp.headers) > requests_of_first  # the second run talked to the server too
    for run in (first, second):
        snapshot = run["session_snapshot"]
        [entry] = [e for e in snapshot["layers"] if e["name"] == "weather"]
        assert entry == {"name": "weather", "lifecycle_state": "suspended", "runtime_state": {}}
        dumped = json.dumps(snapshot)
        assert fake_mcp.url not in dumped
        assert str(fake_mcp.url.split(":")[-1].split("/")[0]) not in dumped  # the port
        assert "mcp-token-for-tests" not in dumped
        session_ids = {h["mcp-session-id"] for h in fake_mcp.headers if "mcp-session-id" in h}
        assert all(session_id not in dumped for session_id in session_ids)
    # The conversation went on: the second run's model saw both tool results.
    assert [r["content"] for r in history_tool_returns(second)] == [
        "sunny in Rome for 1 day(s)",
        "sunny in Rome for 1 day(s)",
    ]


def test_a_session_scoped_run_uses_the_server_on_every_turn(
    api_factory: ApiFactory, fake_mcp: FakeMcp
) -> None:
    api = start(api_factory, fake_mcp)
    llm = llm_test_layer(call_tools=["forecast"], tool_args={"forecast": {"city": "Kyiv"}})
    scope = {
        "app_id": "app-1",
        "workflow_id": "wf-1",
        "workflow_run_id": "wr-mcp",
        "node_id": "node-1",
        "binding_id": "binding-1",
        "agent_id": "agent-1",
        "agent_config_snapshot_id": "snap-1",
    }

    runs = [
        api.run_to_end({**tool_run(mcp_layer(), llm=llm, user=f"turn {n}"), "session": scope})
        for n in (1, 2)
    ]

    assert [run["status"] for run in runs] == ["succeeded", "succeeded"]
    assert len(fake_mcp.calls) == 2
    assert len(history_tool_returns(runs[1])) == 2
    sessions = api.client.get(
        "/v1/sessions", params={"workflow_run_id": "wr-mcp"}, headers=api.headers()
    ).json()["items"]
    [session] = sessions
    assert fake_mcp.url not in json.dumps(session)
    # Retiring the session replays its layers without the tool layer: no connection is needed.
    requests_before = len(fake_mcp.headers)
    response = api.client.post(
        f"/v1/sessions/{session['id']}/retire", json={"wait_seconds": 10}, headers=api.headers()
    )
    [report] = response.json()["reports"]
    assert report["result"] == "cleaned", report
    assert len(fake_mcp.headers) == requests_before


def test_an_unreachable_mcp_server_fails_the_run_with_a_tool_error(
    api_factory: ApiFactory,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    api = api_factory(mcp_servers={"weather": {"url": url}})

    run = api.run_to_end(tool_run(mcp_layer(timeout_seconds=5)))

    assert run["status"] == "failed", run
    assert run["error_type"] == "tool_error"
    assert run["reason"] == "mcp_server_unavailable"
    assert "MCP server 'weather' is unreachable" in run["error"]
    assert url not in run["error"]
    assert "Traceback" not in run["error"]
    assert api.events(run["id"])[-1]["type"] == "run_failed"


def test_a_tool_missing_from_the_server_fails_the_run_with_a_tool_error(
    api_factory: ApiFactory, fake_mcp: FakeMcp
) -> None:
    api = start(api_factory, fake_mcp)

    run = api.run_to_end(tool_run(mcp_layer(tools=["forecast", "tides"])))

    assert run["status"] == "failed", run
    assert run["error_type"] == "tool_error"
    assert run["reason"] == "mcp_tool_missing"
    assert "'tides'" in run["error"]


def test_an_unknown_mcp_server_is_rejected_before_any_run_exists(
    api_factory: ApiFactory, fake_mcp: FakeMcp
) -> None:
    api = start(api_factory, fake_mcp)

    response = api.post_run(tool_run(layer("tools", "tools.mcp", {"server": "nowhere"})))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_mcp_server"
    assert "'nowhere'" in error["message"]
    assert error["details"] == {"layer": "tools", "field": "composition.layers.config.server"}
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []
    assert fake_mcp.headers == []


def test_a_tool_listed_twice_is_rejected(api_factory: ApiFactory, fake_mcp: FakeMcp) -> None:
    api = start(api_factory, fake_mcp)

    response = api.post_run(tool_run(mcp_layer(tools=["forecast", "forecast"])))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "duplicate_tool_name"
    assert error["details"] == {"layer": "weather", "field": "composition.layers.config.tools"}


def test_a_bad_tool_prefix_is_an_invalid_config(api_factory: ApiFactory, fake_mcp: FakeMcp) -> None:
    api = start(api_factory, fake_mcp)

    response = api.post_run(tool_run(mcp_layer(tool_prefix="no spaces")))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_layer_config"
    assert response.json()["error"]["details"]["layer"] == "weather"
