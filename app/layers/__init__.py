"""Built-in layer types and the allow-list of providers a server offers.

`LayerRegistry` is the allow-list: a run may only use the types registered here (no import
paths, nothing dynamic). `LayerRegistry.default(settings)` registers every built-in type; tests
and embedders pass `extra` providers for their own layer types.

The registry also holds what the server offers by name (`ServerCatalog`: model providers, MCP
servers, tool endpoints) and the process-wide HTTP client for caller-hosted tools, which it
creates on first use; `aclose()` closes it (the lifespan calls it on shutdown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import httpx2
from pydantic import ValidationError

from app.compositor import LayerConfigError, LayerProvider
from app.config import ModelProviderKind, ModelProviderSettings, Settings
from app.layers.ask_human import AskHumanLayer
from app.layers.base import (
    AgentLayer,
    HistoryLayer,
    LayerCheckError,
    ModelLayer,
    OutputLayer,
    ServerCatalog,
    ToolSetupError,
)
from app.layers.execution_context import ExecutionContextLayer
from app.layers.history import MessageHistoryLayer
from app.layers.llm import (
    AnthropicModelConfig,
    AnthropicModelLayer,
    OpenAIModelConfig,
    OpenAIModelLayer,
    TestModelLayer,
)
from app.layers.output import JsonSchemaOutputLayer
from app.layers.prompt import PromptLayer
from app.layers.tools_external import ExternalToolsLayer
from app.layers.tools_http import HttpToolsConfig, HttpToolsLayer, SharedHttpClient
from app.layers.tools_mcp import McpToolsConfig, McpToolsLayer

__all__ = [
    "AgentLayer",
    "HistoryLayer",
    "LayerCheckError",
    "LayerRegistry",
    "ModelLayer",
    "OutputLayer",
    "ServerCatalog",
    "ToolSetupError",
]

TEST_PROVIDER = "test"


def model_providers(settings: Settings) -> dict[str, ModelProviderSettings]:
    """The server's model providers, with the always-present `test` provider."""
    providers = dict(settings.model_providers)
    providers.setdefault(TEST_PROVIDER, ModelProviderSettings(kind=ModelProviderKind.TEST))
    return providers


class LayerRegistry:
    """The layer types a server allows, by type id, and what the server offers by name."""

    def __init__(
        self,
        providers: Iterable[LayerProvider[Any]],
        *,
        model_providers: Mapping[str, ModelProviderSettings],
        catalog: ServerCatalog | None = None,
        tool_http_client: SharedHttpClient | None = None,
    ) -> None:
        by_type: dict[str, LayerProvider[Any]] = {}
        for provider in providers:
            if provider.type_id is None:
                raise ValueError(f"{provider!r} has no type id")
            by_type[provider.type_id] = provider
        self._providers = MappingProxyType(by_type)
        self.model_providers = MappingProxyType(dict(model_providers))
        base = catalog or ServerCatalog()
        self.catalog = ServerCatalog(
            model_providers=self.model_providers,
            mcp_servers=MappingProxyType(dict(base.mcp_servers)),
            tool_endpoints=MappingProxyType(dict(base.tool_endpoints)),
        )
        self._tool_http_client = tool_http_client

    @classmethod
    def default(
        cls,
        settings: Settings,
        *,
        extra: Iterable[LayerProvider[Any]] = (),
        http_client: httpx2.AsyncClient | None = None,
    ) -> LayerRegistry:
        """Every built-in layer type, configured from `settings`.

        `http_client` (optional) is given to the model providers; caller-hosted tools use one
        client of their own per registry, created on first use.
        """
        providers_table = model_providers(settings)
        catalog = ServerCatalog(
            model_providers=providers_table,
            mcp_servers=settings.mcp_servers,
            tool_endpoints=settings.tool_endpoints,
        )
        tool_client = SharedHttpClient()

        def openai_layer(config: OpenAIModelConfig) -> OpenAIModelLayer:
            layer = OpenAIModelLayer(providers_table, http_client)
            layer.config = config
            return layer

        def anthropic_layer(config: AnthropicModelConfig) -> AnthropicModelLayer:
            layer = AnthropicModelLayer(providers_table, http_client)
            layer.config = config
            return layer

        def mcp_layer(config: McpToolsConfig) -> McpToolsLayer:
            layer = McpToolsLayer(catalog.mcp_servers)
            layer.config = config
            return layer

        def http_tools_layer(config: HttpToolsConfig) -> HttpToolsLayer:
            layer = HttpToolsLayer(catalog.tool_endpoints, tool_client)
            layer.config = config
            return layer

        providers: list[LayerProvider[Any]] = [
            LayerProvider.from_layer_type(PromptLayer),
            LayerProvider.from_layer_type(MessageHistoryLayer),
            LayerProvider.from_layer_type(TestModelLayer),
            LayerProvider.from_factory(layer_type=OpenAIModelLayer, create=openai_layer),
            LayerProvider.from_factory(layer_type=AnthropicModelLayer, create=anthropic_layer),
            LayerProvider.from_layer_type(JsonSchemaOutputLayer),
            LayerProvider.from_factory(layer_type=McpToolsLayer, create=mcp_layer),
            LayerProvider.from_factory(layer_type=HttpToolsLayer, create=http_tools_layer),
            LayerProvider.from_layer_type(ExternalToolsLayer),
            LayerProvider.from_layer_type(AskHumanLayer),
            LayerProvider.from_layer_type(ExecutionContextLayer),
            *extra,
        ]
        return cls(
            providers,
            model_providers=providers_table,
            catalog=catalog,
            tool_http_client=tool_client,
        )

    @property
    def providers(self) -> Mapping[str, LayerProvider[Any]]:
        return self._providers

    def layer_type(self, type_id: str) -> type[Any] | None:
        provider = self._providers.get(type_id)
        return None if provider is None else provider.layer_type

    def check_config(self, layer: str, type_id: str, raw: object) -> None:
        """The request-time checks of one layer's config (see `app.layers.base`).

        Raises `LayerCheckError` with a stable code. A config that does not validate for another
        reason is left to the compositor's own check (`invalid_layer_config`), as is an unknown
        type.
        """
        provider = self._providers.get(type_id)
        if provider is None:
            return
        layer_type = provider.layer_type
        codes: frozenset[str] = getattr(layer_type, "config_error_codes", frozenset())
        try:
            config = provider.validate_config(raw, layer=layer)
        except LayerConfigError as error:
            cause = error.__cause__
            if isinstance(cause, ValidationError):
                for item in cause.errors():
                    if item["type"] in codes:
                        where = ".".join(str(part) for part in item["loc"]) or None
                        prefix = f"{where}: " if where else ""
                        raise LayerCheckError(
                            item["type"], f"{prefix}{item['msg']}", field=where
                        ) from None
            return
        if isinstance(layer_type, type) and issubclass(layer_type, AgentLayer):
            layer_type.check_config(config, self.catalog)

    async def aclose(self) -> None:
        """Close the HTTP client of caller-hosted tools (a later call opens a new one)."""
        if self._tool_http_client is not None:
            await self._tool_http_client.aclose()
