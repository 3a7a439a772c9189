"""The `llm` family: `llm.test` (deterministic, in process), `llm.openai` and `llm.anthropic`.

Requests never carry keys: `llm.openai` and `llm.anthropic` name a provider from the server's
`STRATA_MODEL_PROVIDERS`, and the factory that builds the layer receives the provider table from
the server. A provider named `test` always exists and maps to `llm.test`'s model; it may stand in
for a provider of either kind.

Model settings are an allow-list per provider kind; an unknown setting or a value of the wrong
type is rejected before the run is stored (`unsupported_model_setting`,
`invalid_model_setting`), instead of being dropped silently.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Literal

import httpx2
from pydantic import Field, JsonValue, TypeAdapter, ValidationError, field_validator
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
from typing_extensions import TypeVar

from app.compositor import LayerConfig, NoLayerDeps
from app.config import ModelProviderKind, ModelProviderSettings
from app.layers.base import LayerCheckError, ModelLayer, ServerCatalog, config_error

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


# --- llm.openai and llm.anthropic ------------------------------------------------------------


OPENAI_MODEL_SETTINGS = frozenset(
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
ANTHROPIC_MODEL_SETTINGS = frozenset({"temperature", "top_p", "max_tokens", "stop_sequences"})

_MODEL_SETTINGS_ADAPTER: TypeAdapter[ModelSettings] = TypeAdapter(ModelSettings)


class _ProviderModelConfig(LayerConfig):
    """A model behind a provider named in server configuration."""

    allowed_settings: ClassVar[frozenset[str]] = frozenset()

    provider: str = Field(
        min_length=1, max_length=128, description="A provider name from server configuration."
    )
    model: str = Field(
        min_length=1, max_length=256, description="The model name the provider knows."
    )
    settings: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, settings: dict[str, JsonValue]) -> dict[str, JsonValue]:
        unknown = sorted(set(settings) - cls.allowed_settings)
        if unknown:
            raise config_error(
                "unsupported_model_setting",
                f"unsupported model setting(s) {unknown}; allowed: {sorted(cls.allowed_settings)}",
            )
        try:
            _MODEL_SETTINGS_ADAPTER.validate_python(settings)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise config_error("invalid_model_setting", f"{where}: {first['msg']}") from None
        return settings


class OpenAIModelConfig(_ProviderModelConfig):
    """A model behind an OpenAI-compatible chat completions endpoint."""

    allowed_settings = OPENAI_MODEL_SETTINGS

    settings: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Model settings: temperature, top_p, max_tokens, presence_penalty, "
        "frequency_penalty, stop_sequences, seed (others are rejected).",
    )


class AnthropicModelConfig(_ProviderModelConfig):
    """A model behind Anthropic's Messages API (or a compatible endpoint)."""

    allowed_settings = ANTHROPIC_MODEL_SETTINGS

    settings: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Model settings: temperature, top_p, max_tokens, stop_sequences (others "
        "are rejected). With temperature or top_p, requests are sent with Anthropic API version "
        "2023-06-01, as version 2026-10-21 (the SDK's default) refuses them.",
    )


_ProviderConfigT = TypeVar("_ProviderConfigT", bound=_ProviderModelConfig)


class _ProviderModelLayer(ModelLayer[NoLayerDeps, _ProviderConfigT]):
    """A model layer whose provider (endpoint and key) comes from `STRATA_MODEL_PROVIDERS`.

    The provider's kind must be the layer's `provider_kind` (or `test`, which always runs the
    deterministic model).
    """

    provider_kind: ClassVar[ModelProviderKind]
    config_error_codes = frozenset({"unsupported_model_setting", "invalid_model_setting"})

    def __init__(
        self,
        providers: Mapping[str, ModelProviderSettings] | None = None,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        super().__init__()
        self._providers = dict(providers or {})
        self._http_client = http_client

    @classmethod
    def check_config(cls, config: Any, catalog: ServerCatalog) -> None:
        name = config.provider
        provider = catalog.model_providers.get(name)
        if provider is None:
            raise LayerCheckError(
                "unknown_model_provider",
                # the configured names are server configuration: no tenant is told them
                f"model provider {name!r} is not configured on this server",
                field="provider",
            )
        if provider.kind not in (cls.provider_kind, ModelProviderKind.TEST):
            raise LayerCheckError(
                "model_provider_kind_mismatch",
                f"model provider {name!r} is a {provider.kind.value!r} provider; a "
                f"{cls.type_id!r} layer needs a {cls.provider_kind.value!r} provider",
                field="provider",
            )

    def _provider(self) -> ModelProviderSettings:
        provider = self._providers.get(self.config.provider)
        if provider is None:
            raise UnknownModelProvider(self.config.provider)
        if provider.kind not in (self.provider_kind, ModelProviderKind.TEST):
            raise UnknownModelProvider(self.config.provider, kind=self.provider_kind)
        return provider

    def _settings(self) -> ModelSettings | None:
        allowed = self.config.allowed_settings
        settings = {k: v for k, v in self.config.settings.items() if k in allowed}
        return _MODEL_SETTINGS_ADAPTER.validate_python(settings) if settings else None


class OpenAIModelLayer(_ProviderModelLayer[OpenAIModelConfig]):
    type_id = "llm.openai"
    provider_kind = ModelProviderKind.OPENAI

    def build_model(self) -> Model:
        provider = self._provider()
        if provider.kind is ModelProviderKind.TEST:
            return build_test_model(TestModelConfig())
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        api_key = provider.api_key.get_secret_value() if provider.api_key else "unused"
        return OpenAIChatModel(
            self.config.model,
            provider=OpenAIProvider(
                base_url=provider.base_url, api_key=api_key, http_client=self._http_client
            ),
            settings=self._settings(),
        )


ANTHROPIC_SAMPLING_SETTINGS = frozenset({"temperature", "top_p"})
ANTHROPIC_SAMPLING_API_VERSION = "2023-06-01"
"""The Messages API version a request with sampling settings is sent with: version 2026-10-21,
which the Anthropic SDK 2.x sends by default, refuses `temperature` and `top_p` with a 400 (and
pydantic-ai drops them from such a request, with a warning, rather than let it fail)."""


class AnthropicModelLayer(_ProviderModelLayer[AnthropicModelConfig]):
    """Anthropic models through pydantic-ai's `AnthropicModel`.

    The Anthropic SDK (2.x) is built on `httpx2`, like the OpenAI one, so the same optional
    shared `http_client` serves both. `base_url` defaults to Anthropic's API when unset.

    A layer configured with `temperature` or `top_p` sends its requests with
    `anthropic-version: 2023-06-01` (`ANTHROPIC_SAMPLING_API_VERSION`), so the values it was
    given take effect; without them, requests carry the SDK's default version. Models that
    refuse sampling settings under any version (pydantic-ai knows them by name) still get them
    dropped by pydantic-ai.
    """

    type_id = "llm.anthropic"
    provider_kind = ModelProviderKind.ANTHROPIC

    def build_model(self) -> Model:
        provider = self._provider()
        if provider.kind is ModelProviderKind.TEST:
            return build_test_model(TestModelConfig())
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        api_key = provider.api_key.get_secret_value() if provider.api_key else "unused"
        settings = self._settings()
        if settings and ANTHROPIC_SAMPLING_SETTINGS & settings.keys():
            settings["extra_headers"] = {"anthropic-version": ANTHROPIC_SAMPLING_API_VERSION}
        return AnthropicModel(
            self.config.model,
            provider=AnthropicProvider(
                base_url=provider.base_url, api_key=api_key, http_client=self._http_client
            ),
            settings=settings,
        )


class UnknownModelProvider(LookupError):
    """The configured provider name is not in the server's configuration (or of another kind)."""

    def __init__(self, name: str, *, kind: ModelProviderKind | None = None) -> None:
        if kind is None:
            message = f"model provider {name!r} is not configured on this server"
        else:
            message = f"model provider {name!r} is not a {kind.value!r} provider on this server"
        super().__init__(message)
        self.name = name
