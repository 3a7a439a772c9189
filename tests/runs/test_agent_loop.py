"""The lean agent turn is equivalent to `Agent.run`: each scenario runs both ways, with the same
scripted model, and must produce the same messages (the snapshot format), output, usage, stream
events, and the same requests to the model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic_ai import (
    CallDeferred,
    DeferredToolRequests,
    PartDeltaEvent,
    PartStartEvent,
    StructuredDict,
    TextPart,
    TextPartDelta,
    Tool,
    UsageLimitExceeded,
)
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from app.runs.agent_loop import TurnResult, run_turn

VOLATILE = {"timestamp", "run_id", "conversation_id", "request_timestamp", "duration"}


def normalized(messages: list[ModelMessage]) -> Any:
    """Messages as JSON, the fields that differ between two runs by nature reduced to whether
    they are set."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v is not None if k in VOLATILE else strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return strip(ModelMessagesTypeAdapter.dump_python(messages, mode="json"))


@dataclass
class Script:
    """A scripted model: answers in turn; records what each request showed it."""

    answers: list[list[Any]]  # per request: text chunks (str) and/or ToolCallPart
    seen: list[dict[str, Any]] = field(default_factory=list)

    def model(self) -> FunctionModel:
        calls = iter(range(1000))

        def record(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
            index = next(calls)
            self.seen.append(
                {
                    "messages": normalized(messages),
                    "tools": [tool.name for tool in info.function_tools],
                    "output_tools": [tool.name for tool in info.output_tools],
                    "allow_text": info.allow_text_output,
                    "instructions": info.instructions,
                }
            )
            return self.answers[min(index, len(self.answers) - 1)]

        async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            parts = [
                TextPart(item) if isinstance(item, str) else item for item in record(messages, info)
            ]
            return ModelResponse(parts=parts)

        async def stream(
            messages: list[ModelMessage], info: AgentInfo
        ) -> AsyncIterator[str | DeltaToolCalls]:
            for index, item in enumerate(record(messages, info)):
                if isinstance(item, str):
                    yield item
                else:
                    yield {
                        index: DeltaToolCall(
                            name=item.tool_name,
                            json_args=item.args_as_json_str(),
                            tool_call_id=item.tool_call_id,
                        )
                    }

        return FunctionModel(respond, stream_function=stream, model_name="script")


def describe(event: Any) -> Any:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return ("text", event.part.content)
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return ("text", event.delta.content_delta)
    if isinstance(event, FunctionToolCallEvent):
        return ("call", event.part.tool_name, event.part.args_as_dict())
    if isinstance(event, FunctionToolResultEvent):
        return ("result", event.part.tool_name, str(getattr(event.part, "content", None)))
    return None


async def turn(script: Script, *, lean: bool, **options: Any) -> tuple[TurnResult, list[Any]]:
    events: list[Any] = []

    async def on_event(event: Any) -> None:
        described = describe(event)
        if described is not None:
            events.append(described)

    settings: dict[str, Any] = {
        "user_prompt": "hello",
        "instructions": "Be brief.",
        "history": [],
        "tools": [],
        "output_type": str,
        "output_validator": None,
        "deferred": None,
        "request_limit": 5,
        **options,
    }
    result = await run_turn(script.model(), on_event=on_event, lean=lean, **settings)
    return result, events


async def both(answers: list[list[Any]], **options: Any) -> tuple[Any, Any]:
    lean_script, agent_script = Script(answers), Script(answers)
    lean = await turn(lean_script, lean=True, **options)
    agent = await turn(agent_script, lean=False, **options)
    return (lean, lean_script), (agent, agent_script)


def assert_same(lean: Any, agent: Any) -> None:
    (lean_result, lean_events), lean_script = lean
    (agent_result, agent_events), agent_script = agent
    assert normalized(lean_result.messages) == normalized(agent_result.messages)
    assert lean_result.output == agent_result.output
    assert lean_result.usage == agent_result.usage
    assert lean_events == agent_events
    assert lean_script.seen == agent_script.seen


def ping(x: int) -> str:
    """Answer a ping."""
    return f"pong {x}"


def ask(question: str) -> str:
    """Ask a human."""
    raise CallDeferred(metadata={"layer_type": "ask_human"})


async def test_a_text_answer_takes_the_lean_path_and_matches_agent_run() -> None:
    lean, agent = await both([["Hi", " there"]])
    assert lean[0][0].lean is True
    assert agent[0][0].lean is False
    assert lean[0][0].output == "Hi there"
    assert_same(lean, agent)


async def test_a_resumed_conversation_matches() -> None:
    first, _ = await both([["first answer"]])
    history = first[0][0].messages
    lean, agent = await both([["second answer"]], history=history, user_prompt="again")
    assert lean[0][0].lean is True
    assert_same(lean, agent)


async def test_tools_offered_but_not_called_match() -> None:
    lean, agent = await both([["no tool needed"]], tools=[Tool(ping)])
    assert lean[1].seen[0]["tools"] == ["ping"]
    assert_same(lean, agent)


async def test_a_tool_call_is_handed_to_agent_run_and_matches() -> None:
    call = ToolCallPart("ping", {"x": 3}, tool_call_id="c1")
    lean, agent = await both([[call], ["pong received"]], tools=[Tool(ping)])
    assert lean[0][0].lean is False  # the first request was lean, the rest Agent.run's
    assert lean[0][0].output == "pong received"
    assert ("result", "ping", "pong 3") in lean[0][1]
    assert_same(lean, agent)


async def test_a_deferred_tool_call_pauses_the_same_way() -> None:
    call = ToolCallPart("ask", {"question": "which?"}, tool_call_id="d1")
    lean, agent = await both([[call]], tools=[Tool(ask)], output_type=[str, DeferredToolRequests])
    output = lean[0][0].output
    assert isinstance(output, DeferredToolRequests)
    assert [c.tool_call_id for c in output.calls] == ["d1"]
    assert_same(lean, agent)


async def test_a_blank_answer_is_retried_the_same_way() -> None:
    lean, agent = await both([[""], ["now with text"]])
    assert lean[0][0].output == "now with text"
    assert_same(lean, agent)


async def test_the_request_budget_stops_both_the_same_way() -> None:
    call = ToolCallPart("ping", {"x": 1}, tool_call_id="c1")
    for lean in (True, False):
        with pytest.raises(UsageLimitExceeded):
            await turn(Script([[call]]), lean=lean, tools=[Tool(ping)], request_limit=1)


async def test_structured_output_uses_agent_run() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    output = StructuredDict(schema, name="final_output")
    script = Script([[ToolCallPart("final_result", {"a": 1}, tool_call_id="o1")]])
    result, _ = await turn(script, lean=True, output_type=output)
    assert result.lean is False
    assert json.loads(json.dumps(result.output)) == {"a": 1}
