"""The `llm` family: `llm.test` (deterministic, in process) and `llm.openai` (HTTP).

Requests never carry keys: `llm.openai` names a provider from the server's
`STRATA_MODEL_PROVIDERS`, and the factory that builds the layer receives the provider table from
the server. A provider named `test` always exists and maps to `llm.test`'s model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import httpx2
from pydantic import Field, JsonValue
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from app.compositor import LayerConfig, NoLayerDeps
from app.config import ModelProviderKind, ModelProviderSettings
from app.layers.base import ModelLayer

# --- llm.test ---------------------------------------------------------------------------------


class TestModelConfig(LayerConfig):
    """A deterministic model for demos, tests and benchmarks."""

    reply: str | None = Field(
        default=None,
        description=(
            "The final answer. With an output layer it is parsed as JSON for the structured "
            "output. When absent: `echo #<n>: <last user prompt>`, where n counts the user "
            "prompts in the whole conversation (so a resumed session shows its history)."
        ),
    )
    latency_seconds: float = Field(default=0.0, ge=0, le=600, description="Delay per request.")
    call_tools: list[str] | Literal["all"] = Field(
        default_factory=list,
        description="Tools to call once, on the run's first model request, before answering.",
    )
    tool_args: dict[str, dict[str, JsonValue]] = Field(
        default_factory=dict, description="Arguments per tool name; missing ones are generated."
    )
    stream_chunk_chars: int = Field(
        default=8, ge=1, description="Streamed answers arrive in chunks of this many characters."
    )


class TestModelLayer(ModelLayer[NoLayerDeps, TestModelConfig]):
    type_id = "llm.test"

    def build_model(self) -> Model:
        return build_test_model(self.config)


def build_test_model(config: TestModelConfig) -> FunctionModel:
    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if config.latency_seconds:
            await asyncio.sleep(config.latency_seconds)
        return ModelResponse(parts=_plan_parts(config, messages, info), model_name="strata-test")

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        if config.latency_seconds:
            await asyncio.sleep(config.latency_seconds)
        parts = _plan_parts(config, messages, info)
        for index, part in enumerate(parts):
            if isinstance(part, ToolCallPart):
                yield {
                    index: DeltaToolCall(
                        name=part.tool_name,
                        json_args=part.args_as_json_str(),
                        tool_call_id=part.tool_call_id,
                    )
                }
            elif isinstance(part, TextPart):
                size = config.stream_chunk_chars
                for start in range(0, len(part.content), size):
                    yield part.content[start : start + size]

    return FunctionModel(respond, stream_function=stream, model_name="strata-test")


def _plan_parts(
    config: TestModelConfig, messages: list[ModelMessage], info: AgentInfo
) -> list[TextPart | ToolCallPart]:
    last = messages[-1] if messages else None
    answered_tools = isinstance(last, ModelRequest) and any(
        isinstance(part, ToolReturnPart) for part in last.parts
    )
    if not answered_tools:
        wanted = [
            tool
            for tool in info.function_tools
            if config.call_tools == "all" or tool.name in config.call_tools
        ]
        if wanted:
            return [
                ToolCallPart(
                    tool_name=tool.name,
                    args=config.tool_args.get(tool.name) or _example_args(tool),
                    tool_call_id=f"call_{tool.name}_{_count_responses(messages)}",
                )
                for tool in wanted
            ]
    if info.output_tools:
        tool = info.output_tools[0]
        args = json.loads(config.reply) if config.reply is not None else _example_args(tool)
        return [ToolCallPart(tool_name=tool.name, args=args, tool_call_id="call_final_output")]
    if config.reply is not None:
        return [TextPart(content=config.reply)]
    prompts = [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    ]
    last_prompt = prompts[-1].content if prompts else ""
    text = last_prompt if isinstance(last_prompt, str) else json.dumps(str(last_prompt))
    return [TextPart(content=f"echo #{len(prompts)}: {text}")]


def _count_responses(messages: list[ModelMessage]) -> int:
    return sum(1 for message in messages if isinstance(message, ModelResponse))


def _example_args(tool: ToolDefinition) -> dict[str, Any]:
    value = example_for_schema(tool.parameters_json_schema)
    return value if isinstance(value, dict) else {}


def example_for_schema(schema: Mapping[str, Any]) -> Any:
    """A small value that satisfies a simple JSON schema (required fields only, local refs)."""
    return _example_value(schema, schema.get("$defs", {}))


def _example_value(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    """A small value that satisfies simple JSON schemas (required fields only)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _example_value(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _example_value(schema[key][0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {
            name: _example_value(properties.get(name, {}), defs)
            for name in schema.get("required", [])
        }
    examples = {"string": "test", "integer": 0, "number": 0, "boolean": False, "array": []}
    return examples.get(str(kind))


# --- llm.openai -------------------------------------------------------------------------------


class OpenAIModelConfig(LayerConfig):
    """A model behind an OpenAI-compatible chat completions endpoint."""

    provider: str = Field(min_length=1, description="A provider name from server configuration.")
    model: str = Field(min_length=1, description="The model name the provider knows.")
    settings: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Model settings: temperature, top_p, max_tokens, presence_penalty, "
        "frequency_penalty, stop_sequences, seed.",
    )


ALLOWED_MODEL_SETTINGS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "stop_sequences",
        "seed",
    }
)


class OpenAIModelLayer(ModelLayer[NoLayerDeps, OpenAIModelConfig]):
    type_id = "llm.openai"

    def __init__(
        self,
        providers: Mapping[str, ModelProviderSettings] | None = None,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        super().__init__()
        self._providers = dict(providers or {})
        self._http_client = http_client

    def build_model(self) -> Model:
        provider = self._providers.get(self.config.provider)
        if provider is None:
            raise UnknownModelProvider(self.config.provider)
        if provider.kind is ModelProviderKind.TEST:
            return build_test_model(TestModelConfig())
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        api_key = provider.api_key.get_secret_value() if provider.api_key else "unused"
        settings: dict[str, Any] = {
            key: value
            for key, value in self.config.settings.items()
            if key in ALLOWED_MODEL_SETTINGS
        }
        return OpenAIChatModel(
            self.config.model,
            provider=OpenAIProvider(
                base_url=provider.base_url, api_key=api_key, http_client=self._http_client
            ),
            settings=ModelSettings(**settings) if settings else None,  # type: ignore[typeddict-item]  # keys filtered above
        )


class UnknownModelProvider(LookupError):
    """The configured provider name is not in the server's configuration."""

    def __init__(self, name: str) -> None:
        super().__init__(f"model provider {name!r} is not configured on this server")
        self.name = name
