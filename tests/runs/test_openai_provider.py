"""Runs whose model is `llm.openai`, against the fake OpenAI-compatible server over real HTTP.

The provider is configured on the server (`model_providers`), the request only names it. Each
test checks what a user sees (run status, output, events, errors) and what the model saw (the
requests the fake recorded). The last tests plant canary secrets (a provider key; MCP server
headers, a tool endpoint's secret and an Anthropic key) and check that each reaches its server
and nothing else: not the API, not the database, not the logs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from app.db import create_engine
from app.models import Base
from tests.api_fixtures import Api, ApiFactory
from tests.db_fixtures import run_coroutine_blocking
from tests.fake_anthropic import FakeAnthropic
from tests.fake_openai import FakeOpenAI
from tests.tool_servers import FakeMcp, FakeToolEndpoint

SYSTEM_PROMPT = "You are a weather assistant. Answer in one sentence."


def canary_key() -> str:
    return f"sk-canary-{uuid.uuid4().hex}"


def start_api(api_factory: ApiFactory, fake: FakeOpenAI, api_key: str | None = None) -> Api:
    return api_factory(model_providers={"fake": fake.provider(api_key or canary_key())})


def run_body(
    user: str,
    *,
    tools: bool = False,
    provider: str = "fake",
    snapshot: dict[str, Any] | None = None,
) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [
        {
            "name": "prompt",
            "type": "plain.prompt",
            "config": {"prefix": SYSTEM_PROMPT, "user": user},
        },
        {"name": "history", "type": "pydantic_ai.history"},
    ]
    if tools:
        layers.append({"name": "tools", "type": "test.tools"})
    layers.append(
        {"name": "llm", "type": "llm.openai", "config": {"provider": provider, "model": "gpt-test"}}
    )
    body: dict[str, Any] = {"composition": {"layers": layers}}
    if snapshot is not None:
        body["session_snapshot"] = snapshot
    return body


@pytest.fixture
def openai_client(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-fake", max_retries=0) as client:
        yield client


def test_the_fake_serves_plain_and_streamed_completions(
    fake_openai: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    client = openai_client
    fake_openai.reply_text("plain answer")
    fake_openai.reply_tool_call("lookup_weather", {"city": "Rome"}, call_id="call_1")
    fake_openai.reply_text("streamed answer")
    fake_openai.reply_error(400, "no such model", code="model_not_found")
    messages: Any = [{"role": "user", "content": "hi there"}]

    plain = client.chat.completions.create(model="m", messages=messages)
    called = client.chat.completions.create(model="m", messages=messages)
    stream = client.chat.completions.create(
        model="m", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="m", messages=messages)

    assert plain.choices[0].message.content == "plain answer"
    assert plain.usage is not None
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (2, 2)
    [call] = called.choices[0].message.tool_calls or []
    assert called.choices[0].finish_reason == "tool_calls"
    assert call.id == "call_1"
    assert call.function.name == "lookup_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Rome"}  # type: ignore[union-attr]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed answer"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert error.value.status_code == 400
    assert error.value.body == {
        "message": "no such model",
        "type": "invalid_request_error",
        "code": "model_not_found",
    }
    assert [r.authorization for r in fake_openai.requests] == ["Bearer sk-fake"] * 4
    assert fake_openai.pending == 0
    # Unscripted: calls the first offered tool with generated arguments, then answers.
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "lookup_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    generated = client.chat.completions.create(model="m", messages=messages, tools=tools)
    [generated_call] = generated.choices[0].message.tool_calls or []
    assert generated_call.function.arguments == '{"city": "test"}'  # type: ignore[union-attr]
    follow_up: Any = [
        *messages,
        generated.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": generated_call.id, "content": "sunny in test"},
    ]
    answered = client.chat.completions.create(model="m", messages=follow_up, tools=tools)
    assert answered.choices[0].message.content == "fake reply to: hi there"


def test_a_run_answers_with_the_providers_text(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    key = canary_key()
    api = start_api(api_factory, fake_openai, key)
    fake_openai.reply_text("It is sunny in Paris today.")

    run = api.run_to_end(run_body("What is the weather in Paris?"))

    assert run["status"] == "succeeded", run
    assert run["output"] == "It is sunny in Paris today."
    assert run["usage"]["requests"] == 1
    assert run["usage"]["input_tokens"] > 0
    assert run["usage"]["output_tokens"] == 6
    [request] = fake_openai.requests
    assert request.model == "gpt-test"
    assert request.stream
    assert request.authorization == f"Bearer {key}"
    assert request.system_texts == [SYSTEM_PROMPT]
    assert request.messages[0]["role"] in {"system", "developer"}
    assert request.messages[-1]["role"] == "user"
    assert request.user_texts == ["What is the weather in Paris?"]
    assert api.events(run["id"])[-1]["type"] == "run_succeeded"


def test_the_streamed_text_reaches_the_event_log_in_full(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    # Flushing at once and one character per chunk make background flushes overlap the end of
    # the run every time, instead of now and then under load.
    api = api_factory(
        model_providers={"fake": fake_openai.provider(canary_key())}, event_text_flush_seconds=0
    )
    text = "It is sunny in Paris today, and warm."
    for _ in range(3):
        fake_openai.reply_text(text, chunk_chars=1)
        run = api.run_to_end(run_body("Weather in Paris?"))

        assert run["status"] == "succeeded", run
        events = api.events(run["id"])
        deltas = [e["data"]["delta"] for e in events if e["type"] == "agent_message_delta"]
        assert "".join(deltas) == text
        assert events[-1]["type"] == "run_succeeded"


def test_a_tool_call_round_trips_through_the_provider(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    api = start_api(api_factory, fake_openai)
    fake_openai.reply_tool_call("lookup_weather", {"city": "Paris"}, call_id="call_weather_1")
    fake_openai.reply_text("Paris is sunny.")

    run = api.run_to_end(run_body("Weather in Paris?", tools=True))

    assert run["status"] == "succeeded", run
    assert run["output"] == "Paris is sunny."
    assert run["usage"]["requests"] == 2
    assert run["usage"]["tool_calls"] == 1
    first, second = fake_openai.requests
    assert first.tool_names == ["lookup_weather"]
    assert first.tools[0]["function"]["parameters"]["required"] == ["city"]
    [tool_result] = second.tool_results
    assert tool_result["tool_call_id"] == "call_weather_1"
    assert "sunny in Paris" in tool_result["content"]
    assistant = [m for m in second.messages if m["role"] == "assistant"]
    assert assistant[-1]["tool_calls"][0]["function"]["name"] == "lookup_weather"
    events = api.events(run["id"])
    [call] = [e["data"] for e in events if e["type"] == "tool_call"]
    [result] = [e["data"] for e in events if e["type"] == "tool_result"]
    assert call == {
        "tool_call_id": "call_weather_1",
        "tool_name": "lookup_weather",
        "args": {"city": "Paris"},
    }
    assert result["tool_call_id"] == "call_weather_1"
    assert result["content"] == "sunny in Paris"
    types = [e["type"] for e in events]
    assert types.index("tool_call") < types.index("tool_result") < types.index("run_succeeded")


def test_unscripted_fake_calls_the_offered_tool_then_answers(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    api = start_api(api_factory, fake_openai)

    run = api.run_to_end(run_body("Weather?", tools=True))

    assert run["status"] == "succeeded", run
    assert run["output"] == "fake reply to: Weather?"
    assert [r.tool_results[0]["content"] for r in fake_openai.requests[1:]] == ["sunny in test"]


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        pytest.param(400, {}, id="400"),
        # The SDK retries 5xx: the error repeats, and `retry-after-ms` keeps the retries quick.
        pytest.param(500, {"retry-after-ms": "10"}, id="500-after-retries"),
    ],
)
def test_a_provider_error_fails_the_run_with_its_message(
    api_factory: ApiFactory, fake_openai: FakeOpenAI, status: int, headers: dict[str, str]
) -> None:
    api = start_api(api_factory, fake_openai)
    message = f"The fake provider refused this request ({status})."
    fake_openai.reply_error(
        status, message, code="fake_refusal", headers=headers, repeat=status >= 500
    )

    run = api.run_to_end(run_body("Hello?"))

    assert run["status"] == "failed", run
    assert run["error_type"] == "model_error"
    assert message in run["error"]
    assert run["reason"] == f"http_{status}"
    assert run["session_snapshot"] is not None  # the layers exited cleanly
    if status < 500:
        assert len(fake_openai.requests) == 1
    else:
        assert len(fake_openai.requests) > 1  # the SDK retried before giving up
    assert api.events(run["id"])[-1]["type"] == "run_failed"


def test_a_second_run_resumes_the_first_runs_conversation(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    api = start_api(api_factory, fake_openai)
    fake_openai.reply_text("It is sunny in Paris.")
    fake_openai.reply_text("Also sunny in Rome.")

    first = api.run_to_end(run_body("Weather in Paris?"))
    assert first["status"] == "succeeded", first
    second = api.run_to_end(run_body("And in Rome?", snapshot=first["session_snapshot"]))

    assert second["status"] == "succeeded", second
    assert second["output"] == "Also sunny in Rome."
    request = fake_openai.requests[-1]
    assert [(m["role"], m.get("content")) for m in request.messages[1:]] == [
        ("user", "Weather in Paris?"),
        ("assistant", "It is sunny in Paris."),
        ("user", "And in Rome?"),
    ]
    assert request.system_texts == [SYSTEM_PROMPT]  # instructions are sent once, never stored


# What PostgreSQL refuses in text and jsonb (and orjson, in any JSON column): a provider's
# answer may still carry them; they are stored as U+FFFD, on every database.
UNSTORABLE = "a\u0000b\ud800c"
STORED = "a\ufffdb\ufffdc"


def read_run(api: Api, run_id: str) -> dict[str, Any]:
    """The run as `GET /v1/runs/{id}` reads it from the database."""
    response = api.client.get(f"/v1/runs/{run_id}", headers=api.headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_answer_with_nul_and_lone_surrogates_ends_the_run_and_is_stored_replaced(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    api = start_api(api_factory, fake_openai)
    fake_openai.reply_text(f"Sunny {UNSTORABLE}.", chunk_chars=4)
    fake_openai.reply_text("Still sunny.")

    first = api.run_to_end(run_body("Weather?"))

    assert first["status"] == "succeeded", first
    assert first["output"] == f"Sunny {STORED}."
    assert read_run(api, first["id"])["output"] == f"Sunny {STORED}."
    events = api.events(first["id"])
    deltas = "".join(e["data"]["delta"] for e in events if e["type"] == "agent_message_delta")
    assert deltas == f"Sunny {STORED}."
    assert events[-1]["type"] == "run_succeeded"
    # the snapshot carries the answer too, and the next run sends it back to the model
    second = api.run_to_end(run_body("And later?", snapshot=first["session_snapshot"]))
    assert second["status"] == "succeeded", second
    assert fake_openai.requests[-1].messages[-2] == {
        "role": "assistant",
        "content": f"Sunny {STORED}.",
    }


def test_a_provider_error_with_nul_and_lone_surrogates_fails_the_run_with_it_replaced(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    api = start_api(api_factory, fake_openai)
    fake_openai.reply_error(400, f"refused {UNSTORABLE}")

    run = api.run_to_end(run_body("Hello?"))

    assert run["status"] == "failed", run
    assert f"refused {STORED}" in run["error"]
    assert read_run(api, run["id"])["error"] == run["error"]
    assert api.events(run["id"])[-1]["type"] == "run_failed"


def test_an_unconfigured_provider_is_rejected_before_any_run_exists(
    api_factory: ApiFactory, fake_openai: FakeOpenAI
) -> None:
    api = start_api(api_factory, fake_openai)

    response = api.post_run(run_body("Hello?", provider="nowhere"))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_model_provider"
    assert "nowhere" in error["message"]
    assert error["details"]["layer"] == "llm"
    listed = api.client.get("/v1/runs", headers=api.headers())
    assert listed.status_code == 200
    assert listed.json()["items"] == []
    assert fake_openai.requests == []


def _all_rows_as_text(database_url: str) -> str:
    """Every row of every table, every column, as one string."""

    async def dump() -> str:
        engine = create_engine(database_url)
        parts: list[str] = []
        try:
            async with engine.connect() as connection:
                for table in Base.metadata.sorted_tables:
                    rows = (await connection.execute(sa.select(table))).mappings().all()
                    parts.extend(
                        f"{table.name}: {json.dumps(dict(row), default=str)}" for row in rows
                    )
        finally:
            await engine.dispose()
        return "\n".join(parts)

    return run_coroutine_blocking(dump)


def test_the_provider_key_reaches_the_provider_and_nothing_else(
    api_factory: ApiFactory,
    fake_openai: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = canary_key()
    api = api_factory(model_providers={"fake": fake_openai.provider(key)})
    fake_openai.reply_tool_call("lookup_weather", {"city": "Oslo"})
    fake_openai.reply_text("Oslo is sunny.")
    fake_openai.reply_text("Still sunny.")
    fake_openai.reply_error(401, "Incorrect API key provided.", type="authentication_error")

    first = api.run_to_end(run_body("Weather in Oslo?", tools=True))
    second = api.run_to_end(run_body("And now?", tools=True, snapshot=first["session_snapshot"]))
    failed = api.run_to_end(run_body("Once more?", tools=True, snapshot=second["session_snapshot"]))

    assert [first["status"], second["status"], failed["status"]] == [
        "succeeded",
        "succeeded",
        "failed",
    ]
    assert failed["reason"] == "http_401"
    # The provider did receive the key, as a bearer token, on every request (and only there).
    assert len(fake_openai.requests) == 4
    assert {r.authorization for r in fake_openai.requests} == {f"Bearer {key}"}
    assert all(key not in json.dumps(r.body) for r in fake_openai.requests)

    # Through the API: runs (with their snapshots), one by one and listed, and their events.
    seen_by_api = [api.client.get("/v1/runs", headers=api.headers()).text]
    for run in (first, second, failed):
        seen_by_api.append(api.client.get(f"/v1/runs/{run['id']}", headers=api.headers()).text)
        seen_by_api.append(json.dumps(api.events(run["id"])))
    assert "session_snapshot" in seen_by_api[1]
    assert "sunny in Oslo" in seen_by_api[2]
    assert all(key not in text for text in seen_by_api)

    # In the database: every column of every row of every table (runs, run_events, sessions…).
    stored = _all_rows_as_text(api.database_url)
    assert "sunny in Oslo" in stored
    assert key not in stored
    assert key.removeprefix("sk-") not in stored

    # In the logs: structlog output (stdout/stderr) and standard logging at DEBUG level.
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "run_finished" in logs, "the service's logs were not captured: this check is void"
    assert key not in logs


def test_tool_secrets_reach_their_servers_and_nothing_else(
    api_factory: ApiFactory,
    fake_mcp: FakeMcp,
    tool_endpoint: FakeToolEndpoint,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Canaries in `STRATA_MCP_SERVERS` headers, `STRATA_TOOL_ENDPOINTS` secrets and an
    `anthropic` provider key, given as the JSON environment variables an operator sets."""
    caplog.set_level(logging.DEBUG)
    mcp_token = f"mcp-canary-{uuid.uuid4().hex}"
    anthropic_key = f"sk-ant-canary-{uuid.uuid4().hex}"
    endpoint_secret = tool_endpoint.secret  # a fresh canary per test
    monkeypatch.setenv(
        "STRATA_MCP_SERVERS",
        json.dumps({"weather": fake_mcp.settings({"Authorization": f"Bearer {mcp_token}"})}),
    )
    monkeypatch.setenv("STRATA_TOOL_ENDPOINTS", json.dumps({"engine": tool_endpoint.settings()}))
    monkeypatch.setenv(
        "STRATA_MODEL_PROVIDERS", json.dumps({"claude": fake_anthropic.provider(anthropic_key)})
    )
    api = api_factory()
    tools = [
        {"name": "weather", "type": "tools.mcp", "config": {"server": "weather"}},
        {
            "name": "engine",
            "type": "tools.http",
            "deps": {"execution_context": "execution_context"},
            "config": {"endpoint": "engine", "tools": [{"name": "lookup_order"}]},
        },
    ]

    def body(llm: dict[str, Any], snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
        layers = [
            {"name": "prompt", "type": "plain.prompt", "config": {"user": "Go."}},
            {"name": "execution_context", "type": "execution_context"},
            {"name": "history", "type": "pydantic_ai.history"},
            *tools,
            llm,
        ]
        request: dict[str, Any] = {"composition": {"layers": layers}}
        if snapshot is not None:
            request["session_snapshot"] = snapshot
        return request

    test_llm = {
        "name": "llm",
        "type": "llm.test",
        "config": {"call_tools": ["forecast", "explode", "lookup_order"]},
    }
    claude = {
        "name": "llm",
        "type": "llm.anthropic",
        "config": {"provider": "claude", "model": "c"},
    }
    first = api.run_to_end(body(test_llm))
    second = api.run_to_end(body(claude, first["session_snapshot"]))
    fake_anthropic.reply_error(401, "invalid x-api-key", type="authentication_error")
    failed = api.run_to_end(body(claude, second["session_snapshot"]))

    assert [first["status"], second["status"], failed["status"]] == [
        "succeeded",
        "succeeded",
        "failed",
    ]
    # The secrets were used where they belong.
    assert {h.get("authorization") for h in fake_mcp.headers} == {f"Bearer {mcp_token}"}
    assert len(fake_mcp.calls) >= 3
    assert tool_endpoint.requests and all(r.verified for r in tool_endpoint.requests)
    assert {r.api_key for r in fake_anthropic.requests} == {anthropic_key}
    canaries = [mcp_token, endpoint_secret, anthropic_key]

    # Through the API: runs (with their snapshots) and their events.
    seen_by_api = [api.client.get("/v1/runs", headers=api.headers()).text]
    for run in (first, second, failed):
        seen_by_api.append(api.client.get(f"/v1/runs/{run['id']}", headers=api.headers()).text)
        seen_by_api.append(json.dumps(api.events(run["id"])))
    assert "sunny in test" in seen_by_api[2]
    assert "shipped" in seen_by_api[2]
    for canary in canaries:
        assert all(canary not in text for text in seen_by_api), canary

    # In the database: every column of every row of every table.
    stored = _all_rows_as_text(api.database_url)
    assert "sunny in test" in stored
    for canary in canaries:
        assert canary not in stored

    # In the logs: structlog output and standard logging at DEBUG level (the MCP client's too).
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "run_finished" in logs, "the service's logs were not captured: this check is void"
    for canary in canaries:
        assert canary not in logs
