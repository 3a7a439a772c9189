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
  the first request, `Agent.run` runs the whole turn again with the same inputs, but its first
  model request is answered with the response already received (`_Replayed`, through
  pydantic-ai's `CompletedStreamedResponse`, without re-emitting its stream events). The model
  is never asked twice, and messages, usage, retries, tool and deferral semantics are exactly
  `Agent.run`'s.

The message types, the snapshot format (`ModelMessagesTypeAdapter`), usage and events are the
same on both paths; `tests/runs/test_agent_loop.py` runs each scenario both ways and compares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
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
        replayed = dataclasses.replace(response, run_id=None, conversation_id=None)
        model = _Replayed(model, replayed)
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
        on_event=on_event,
    )


class _Replayed(WrapperModel):
    """The wrapped model, except that its first streamed request is answered with `response`
    (already received, its stream events already forwarded)."""

    def __init__(self, wrapped: Model, response: ModelResponse) -> None:
        super().__init__(wrapped)
        self._response: ModelResponse | None = response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        response, self._response = self._response, None
        if response is not None:
            yield CompletedStreamedResponse(
                response, model_request_parameters=model_request_parameters
            )
            return
        async with self.wrapped.request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as stream:
            yield stream


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
        timestamp=datetime.now(UTC),  # as `Agent.run` stamps a request just before sending it
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
    response.model_id = response.model_id or model.model_id
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
        event_stream_handler=handler,
    )
    return TurnResult(result.all_messages(), result.output, result.usage, lean=False)
