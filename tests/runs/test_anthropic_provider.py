"""Runs whose model is `llm.anthropic`, against the fake Anthropic Messages API over real HTTP.

The provider (kind `anthropic`) is configured on the server, the request only names it. The tests
check what a user sees (status, output, usage, events, errors) and what the model received (the
requests the fake recorded).
"""

from __future__ import annotations

import uuid
from typing import Any

import anthropic
import pytest

from tests.api_fixtures import Api, ApiFactory
from tests.fake_anthropic import FakeAnthropic, ToolUse
from tests.fake_openai import FakeOpenAI
from tests.runs.bodies import layer

SYSTEM_PROMPT = "You are a weather assistant. Answer in one sentence."


def start_api(api_factory: ApiFactory, fake: FakeAnthropic, api_key: str | None = None) -> Api:
    return api_factory(
        model_providers={"claude": fake.provider(api_key or f"sk-ant-{uuid.uuid4().hex}")},
        event_text_flush_seconds=0,
    )


def run_body(
    user: str,
    *,
    tools: bool = False,
    provider: str = "claude",
    settings: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    layer_type: str = "llm.anthropic",
) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [
        layer("prompt", "plain.prompt", {"prefix": SYSTEM_PROMPT, "user": user}),
        layer("history", "pydantic_ai.history"),
    ]
    if tools:
        layers.append(layer("tools", "test.tools"))
    config: dict[str, Any] = {"provider": provider, "model": "claude-test"}
    if settings is not None:
        config["settings"] = settings
    layers.append(layer("llm", layer_type, config))
    body: dict[str, Any] = {"composition": {"layers": layers}}
    if snapshot is not None:
        body["session_snapshot"] = snapshot
    return body


def test_the_fake_speaks_the_messages_api(fake_anthropic: FakeAnthropic) -> None:
    client = anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key="sk-ant", max_retries=0)
    fake_anthropic.reply_text("plain answer")
    fake_anthropic.reply_tool_use(ToolUse("lookup_weather", {"city": "Rome"}, id="toolu_1"))
    fake_anthropic.reply_text("streamed answer", chunk_chars=3)
    fake_anthropic.reply_error(400, "no such model")
    messages: Any = [{"role": "user", "content": "hi there"}]

    plain = client.messages.create(model="m", max_tokens=50, messages=messages)
    called = client.messages.create(model="m", max_tokens=50, messages=messages)
    with client.messages.stream(model="m", max_tokens=50, messages=messages) as stream:
        streamed = list(stream.text_stream)
        final = stream.get_final_message()
    with pytest.raises(anthropic.BadRequestError) as error:
        client.messages.create(model="m", max_tokens=50, messages=messages)

    assert [block.type for block in plain.content] == ["text"]
    assert plain.content[0].text == "plain answer"  # type: ignore[union-attr]
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (2, 2)
    assert called.stop_reason == "tool_use"
    [tool_use] = called.content
    assert (tool_use.id, tool_use.name, tool_use.input) == (  # type: ignore[union-attr]
        "toolu_1",
        "lookup_weather",
        {"city": "Rome"},
    )
    assert streamed == ["str", "eam", "ed ", "ans", "wer"]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 2
    assert error.value.status_code == 400
    assert "no such model" in str(error.value)
    assert {r.api_key for r in fake_anthropic.requests} == {"sk-ant"}
    assert fake_anthropic.pending == 0


def test_a_run_answers_with_the_providers_streamed_text(
    api_factory: ApiFactory, fake_anthropic: FakeAnthropic
) -> None:
    key = f"sk-ant-{uuid.uuid4().hex}"
    api = start_api(api_factory, fake_anthropic, key)
    text = "It is sunny in Paris today."
    fake_anthropic.reply_text(text, chunk_chars=4)

    run = api.run_to_end(run_body("What is the weather in Paris?"))

    assert run["status"] == "succeeded", run
    assert run["output"] == text
    assert run["usage"]["requests"] == 1
    assert run["usage"]["input_tokens"] > 0
    assert run["usage"]["output_tokens"] == 6
    [request] = fake_anthropic.requests
    assert request.stream
    assert request.model == "claude-test"
    assert request.api_key == key
    assert SYSTEM_PROMPT in request.system_text
    assert request.user_texts == ["What is the weather in Paris?"]
    events = api.events(run["id"])
    deltas = [e["data"]["delta"] for e in events if e["type"] == "agent_message_delta"]
    assert "".join(deltas) == text
    assert events[-1]["type"] == "run_succeeded"


def test_a_tool_use_round_trips_through_the_provider(
    api_factory: ApiFactory, fake_anthropic: FakeAnthropic
) -> None:
    api = start_api(api_factory, fake_anthropic)
    fake_anthropic.reply_tool_use(ToolUse("lookup_weather", {"city": "Oslo"}, id="toolu_w1"))
    fake_anthropic.reply_text("Oslo is sunny.")

    run = api.run_to_end(run_body("Weather in Oslo?", tools=True))

    assert run["status"] == "succeeded", run
    assert run["output"] == "Oslo is sunny."
    assert run["usage"]["requests"] == 2
    assert run["usage"]["tool_calls"] == 1
    first, second = fake_anthropic.requests
    assert first.tool_names == ["lookup_weather"]
    assert first.tools[0]["input_schema"]["required"] == ["city"]
    [result] = second.tool_results
    assert result["tool_use_id"] == "toolu_w1"
    assert second.result_text(result) == "sunny in Oslo"
    events = api.events(run["id"])
    [call] = [e["data"] for e in events if e["type"] == "tool_call"]
    [returned] = [e["data"] for e in events if e["type"] == "tool_result"]
    assert call == {
        "tool_call_id": "toolu_w1",
        "tool_name": "lookup_weather",
        "args": {"city": "Oslo"},
    }
    assert returned["content"] == "sunny in Oslo"


def test_settings_reach_the_provider(
    api_factory: ApiFactory, fake_anthropic: FakeAnthropic
) -> None:
    api = start_api(api_factory, fake_anthropic)

    run = api.run_to_end(
        run_body("Hi", settings={"temperature": 0.25, "max_tokens": 321, "stop_sequences": ["##"]})
    )

    assert run["status"] == "succeeded", run
    [request] = fake_anthropic.requests
    assert request.body["temperature"] == 0.25
    assert request.body["max_tokens"] == 321
    assert request.body["stop_sequences"] == ["##"]
    # API version 2026-10-21 (the SDK's default) refuses sampling settings; the fake does too.
    assert request.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(
    ("settings", "version"),
    [
        pytest.param({"top_p": 0.5}, "2023-06-01", id="top-p-alone"),
        pytest.param({"max_tokens": 64}, None, id="no-sampling-settings"),  # the SDK's own
    ],
)
def test_the_api_version_takes_the_sampling_settings_only_when_they_are_given(
    api_factory: ApiFactory,
    fake_anthropic: FakeAnthropic,
    settings: dict[str, Any],
    version: str | None,
) -> None:
    api = start_api(api_factory, fake_anthropic)

    run = api.run_to_end(run_body("Hi", settings=settings))

    assert run["status"] == "succeeded", run
    [request] = fake_anthropic.requests
    assert {name: request.body.get(name) for name in settings} == settings
    sampling = {"temperature", "top_p"}
    assert sampling & request.body.keys() == sampling & settings.keys()
    if version is not None:
        assert request.headers["anthropic-version"] == version
    else:
        assert request.headers["anthropic-version"] >= "2026-10-21"


def test_a_second_run_resumes_the_conversation(
    api_factory: ApiFactory, fake_anthropic: FakeAnthropic
) -> None:
    api = start_api(api_factory, fake_anthropic)
    fake_anthropic.reply_text("Sunny in Paris.")
    fake_anthropic.reply_text("Rainy in Rome.")

    first = api.run_to_end(run_body("Paris?"))
    second = api.run_to_end(run_body("And Rome?", snapshot=first["session_snapshot"]))

    assert second["status"] == "succeeded", second
    assert second["output"] == "Rainy in Rome."
    messages = fake_anthropic.requests[-1].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert fake_anthropic.requests[-1].user_texts == ["Paris?", "And Rome?"]


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        pytest.param(400, {}, "invalid_request_error", id="400"),
        # The SDK retries 529 (overloaded): the error repeats; `retry-after-ms` keeps it quick.
        pytest.param(529, {"retry-after-ms": "10"}, "overloaded_error", id="529-after-retries"),
    ],
)
def test_a_provider_error_fails_the_run_with_its_message(
    api_factory: ApiFactory,
    fake_anthropic: FakeAnthropic,
    status: int,
    headers: dict[str, str],
    kind: str,
) -> None:
    api = start_api(api_factory, fake_anthropic)
    message = f"The fake Anthropic refused this request ({status})."
    fake_anthropic.reply_error(status, message, type=kind, headers=headers, repeat=status >= 500)

    run = api.run_to_end(run_body("Hello?"))

    assert run["status"] == "failed", run
    assert run["error_type"] == "model_error"
    assert run["error"] == message
    assert run["reason"] == f"http_{status}"
    assert run["session_snapshot"] is not None
    if status < 500:
        assert len(fake_anthropic.requests) == 1
    else:
        assert len(fake_anthropic.requests) > 1
    assert api.events(run["id"])[-1]["type"] == "run_failed"


def test_an_unconfigured_provider_is_rejected(
    api_factory: ApiFactory, fake_anthropic: FakeAnthropic
) -> None:
    api = start_api(api_factory, fake_anthropic)

    response = api.post_run(run_body("Hello?", provider="nowhere"))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_model_provider"
    assert error["details"] == {"layer": "llm", "field": "composition.layers.config.provider"}
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(
    ("layer_type", "provider"),
    [
        pytest.param("llm.anthropic", "gpt", id="openai-provider-in-anthropic-layer"),
        pytest.param("llm.openai", "claude", id="anthropic-provider-in-openai-layer"),
    ],
)
def test_a_provider_of_another_kind_is_rejected(
    api_factory: ApiFactory,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    layer_type: str,
    provider: str,
) -> None:
    api = api_factory(
        model_providers={
            "claude": fake_anthropic.provider("sk-ant"),
            "gpt": fake_openai.provider("sk-oai"),
        }
    )

    response = api.post_run(run_body("Hello?", provider=provider, layer_type=layer_type))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "model_provider_kind_mismatch"
    assert error["details"] == {"layer": "llm", "field": "composition.layers.config.provider"}
    assert f"{provider!r}" in error["message"]
    assert fake_anthropic.requests == [] and fake_openai.requests == []


@pytest.mark.parametrize(
    ("settings", "code", "field"),
    [
        pytest.param({"seed": 3}, "unsupported_model_setting", "settings", id="unsupported"),
        pytest.param({"temperature": "hot"}, "invalid_model_setting", "settings", id="wrong-type"),
    ],
)
def test_bad_model_settings_are_rejected(
    api_factory: ApiFactory,
    fake_anthropic: FakeAnthropic,
    settings: dict[str, Any],
    code: str,
    field: str,
) -> None:
    api = start_api(api_factory, fake_anthropic)

    response = api.post_run(run_body("Hello?", settings=settings))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["details"] == {"layer": "llm", "field": f"composition.layers.config.{field}"}


def test_the_test_provider_stands_in_for_an_anthropic_one(api_factory: ApiFactory) -> None:
    api = api_factory()

    run = api.run_to_end(run_body("Hello?", provider="test"))

    assert run["status"] == "succeeded", run
    assert run["output"] == "echo #1: Hello?"
