"""One agent turn: pydantic-ai's model and message layer on the hot path, `Agent.run` for the rest.

Profiling showed `Agent.run` costing ~3 ms of CPU for a one-request turn with a test model
(graph, capabilities, contexts), against ~0.03 ms for the model request itself: more than half of
what a whole run may cost. Most turns are one request that the model answers with text. This
module makes that request itself, with exactly the messages and request parameters `Agent.run`
would build, and hands the turn over to `Agent.run` whenever anything else happens:

- **lean path** (a new user turn, text output, no resume): build the `ModelRequest` (user prompt,
  instructions, run and conversation ids, timestamp), stream `Model.request_stream` with the
  same `ModelRequestParameters` (function tools, instruction parts), forward the stream events,
  count usage. A response made only of non-empty text is the turn's output.
- **hand-over**: a response with tool calls (function tools, `ask_human` and other deferred
  tools), an empty or thinking-only response, structured output (`output.json_schema`), and a
  resume with deferred tool results are all left to `Agent.run`. When the lean path already made
  the first request, `Agent.run` continues from the history ending with that response and the
  usage so far (exactly how pydantic-ai resumes a run whose last response has open tool calls),
  so the model is never asked twice and tool, retry and deferral semantics are pydantic-ai's own.

The message types, the snapshot format (`ModelMessagesTypeAdapter`), usage and events are the
same on both paths; `tests/runs/test_agent_loop.py` runs each scenario both ways and compares.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, RunContext, Tool
from pydantic_ai.messages import (
    InstructionPart,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.usage import RunUsage, UsageLimits
from uuid_utils import uuid7

OnEvent = Callable[[Any], Awaitable[None]]


@dataclass
class TurnResult:
    """What a turn produced: every message (history included), the output, the usage."""

    messages: list[ModelMessage]
    output: Any
    usage: RunUsage
    lean: bool  # True when the lean path answered the turn alone


async def run_turn(
    model: Model,
    *,
    user_prompt: str | None,
    instructions: str | None,
    history: Sequence[ModelMessage],
    tools: Sequence[Tool[Any]],
    output_type: Any,
    output_validator: Callable[[Any], Any] | None,
    deferred: DeferredToolResults | None,
    request_limit: int,
    on_event: OnEvent,
    lean: bool = True,
) -> TurnResult:
    """Run one turn; raises what `Agent.run` raises (model errors, `UsageLimitExceeded`…).

    `lean=False` always uses `Agent.run` (the equivalence tests compare both).
    """
    limits = UsageLimits(request_limit=request_limit)
    if (
        lean
        and deferred is None
        and user_prompt is not None
        and output_validator is None
        and _text_output(output_type)
        and not _has_open_tool_calls(history)
        and request_limit >= 1
    ):
        messages, response, usage = await _first_request(
            model, user_prompt, instructions, history, tools, on_event
        )
        text = _text_only(response)
        if text is not None:
            return TurnResult(messages, text, usage, lean=True)
        return await _agent_run(
            model,
            None,
            instructions=instructions,
            history=messages,
            tools=tools,
            output_type=output_type,
            output_validator=None,
            deferred=None,
            limits=limits,
            usage=usage,
            on_event=on_event,
        )
    return await _agent_run(
        model,
        user_prompt if deferred is None or user_prompt else None,
        instructions=instructions,
        history=list(history),
        tools=tools,
        output_type=output_type,
        output_validator=output_validator,
        deferred=deferred,
        limits=limits,
        usage=None,
        on_event=on_event,
    )


def _text_output(output_type: Any) -> bool:
    if output_type is str:
        return True
    return isinstance(output_type, list) and all(
        item is str or item is DeferredToolRequests for item in output_type
    )


def _has_open_tool_calls(history: Sequence[ModelMessage]) -> bool:
    return bool(history) and not (
        isinstance(history[-1], ModelResponse) and not history[-1].tool_calls
    )


def _text_only(response: ModelResponse) -> str | None:
    """The response's text when it is made of non-empty text parts only, else None."""
    if not response.parts or not all(isinstance(part, TextPart) for part in response.parts):
        return None
    text = "".join(part.content for part in response.parts if isinstance(part, TextPart))
    return text or None


def _conversation_id(history: Sequence[ModelMessage]) -> str:
    for message in reversed(history):
        if message.conversation_id is not None:
            return message.conversation_id
    return str(uuid7())


async def _first_request(
    model: Model,
    user_prompt: str,
    instructions: str | None,
    history: Sequence[ModelMessage],
    tools: Sequence[Tool[Any]],
    on_event: OnEvent,
) -> tuple[list[ModelMessage], ModelResponse, RunUsage]:
    run_id, conversation_id = str(uuid7()), _conversation_id(history)
    request = ModelRequest(
        parts=[UserPromptPart(user_prompt)],
        instructions=instructions,
        run_id=run_id,
        conversation_id=conversation_id,
    )
    params = ModelRequestParameters(
        function_tools=[tool.tool_def for tool in tools],
        instruction_parts=[InstructionPart(content=instructions)] if instructions else None,
    )
    messages: list[ModelMessage] = [*history, request]
    async with model.request_stream(messages, None, params, None) as stream:
        async for event in stream:
            await on_event(event)
    response = stream.get()
    response.run_id = run_id
    response.conversation_id = conversation_id
    usage = RunUsage()
    usage.incr(response.usage)
    usage.requests += 1
    messages.append(response)
    return messages, response, usage


async def _agent_run(
    model: Model,
    user_prompt: str | None,
    *,
    instructions: str | None,
    history: list[ModelMessage],
    tools: Sequence[Tool[Any]],
    output_type: Any,
    output_validator: Callable[[Any], Any] | None,
    deferred: DeferredToolResults | None,
    limits: UsageLimits,
    usage: RunUsage | None,
    on_event: OnEvent,
) -> TurnResult:
    agent: Agent[None, Any] = Agent(model, output_type=output_type, tools=list(tools))
    if output_validator is not None:
        check = output_validator

        @agent.output_validator
        def _check_output(value: Any) -> Any:
            if isinstance(value, DeferredToolRequests):
                return value
            return check(value)

    async def handler(_ctx: RunContext[None], events: AsyncIterable[Any]) -> None:
        async for event in events:
            await on_event(event)

    result = await agent.run(
        user_prompt,
        message_history=history or None,
        deferred_tool_results=deferred,
        instructions=instructions,
        usage_limits=limits,
        usage=usage,
        event_stream_handler=handler,
    )
    return TurnResult(result.all_messages(), result.output, result.usage, lean=False)
