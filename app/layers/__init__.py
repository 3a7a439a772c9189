"""Built-in layer types and the allow-list of providers a server offers.

`LayerRegistry` is the allow-list: a run may only use the types registered here (no import
paths, nothing dynamic). `LayerRegistry.default(settings)` registers every built-in type; tests
and embedders pass `extra` providers for their own layer types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import httpx2

from app.compositor import LayerProvider
from app.config import ModelProviderKind, ModelProviderSettings, Settings
from app.layers.ask_human import AskHumanLayer
from app.layers.base import AgentLayer, HistoryLayer, ModelLayer, OutputLayer
from app.layers.execution_context import ExecutionContextLayer
from app.layers.history import MessageHistoryLayer
from app.layers.llm import OpenAIModelConfig, OpenAIModelLayer, TestModelLayer
from app.layers.output import JsonSchemaOutputLayer
from app.layers.prompt import PromptLayer

__all__ = [
    "AgentLayer",
    "HistoryLayer",
    "LayerRegistry",
    "ModelLayer",
    "OutputLayer",
]

TEST_PROVIDER = "test"


def model_providers(settings: Settings) -> dict[str, ModelProviderSettings]:
    """The server's model providers, with the always-present `test` provider."""
    providers = dict(settings.model_providers)
    providers.setdefault(TEST_PROVIDER, ModelProviderSettings(kind=ModelProviderKind.TEST))
    return providers


class LayerRegistry:
    """The layer types a server allows, by type id."""

    def __init__(
        self,
        providers: Iterable[LayerProvider[Any]],
        *,
        model_providers: Mapping[str, ModelProviderSettings],
    ) -> None:
        by_type: dict[str, LayerProvider[Any]] = {}
        for provider in providers:
            if provider.type_id is None:
                raise ValueError(f"{provider!r} has no type id")
            by_type[provider.type_id] = provider
        self._providers = MappingProxyType(by_type)
        self.model_providers = MappingProxyType(dict(model_providers))

    @classmethod
    def default(
        cls,
        settings: Settings,
        *,
        extra: Iterable[LayerProvider[Any]] = (),
        http_client: httpx2.AsyncClient | None = None,
    ) -> LayerRegistry:
        providers_table = model_providers(settings)

        def openai_layer(config: OpenAIModelConfig) -> OpenAIModelLayer:
            layer = OpenAIModelLayer(providers_table, http_client)
            layer.config = config
            return layer

        providers: list[LayerProvider[Any]] = [
            LayerProvider.from_layer_type(PromptLayer),
            LayerProvider.from_layer_type(MessageHistoryLayer),
            LayerProvider.from_layer_type(TestModelLayer),
            LayerProvider.from_factory(layer_type=OpenAIModelLayer, create=openai_layer),
            LayerProvider.from_layer_type(JsonSchemaOutputLayer),
            LayerProvider.from_layer_type(AskHumanLayer),
            LayerProvider.from_layer_type(ExecutionContextLayer),
            *extra,
        ]
        return cls(providers, model_providers=providers_table)

    @property
    def providers(self) -> Mapping[str, LayerProvider[Any]]:
        return self._providers

    def layer_type(self, type_id: str) -> type[Any] | None:
        provider = self._providers.get(type_id)
        return None if provider is None else provider.layer_type
