"""Layer types used by the tests, registered on top of the built-in allow-list.

`test.recording` logs every hook and resource step into `RECORDS[label]` and can be told to fail
in one hook; `test.tools` offers a `lookup_weather` tool (for tool-call round trips);
`test.approval` offers `delete_file`, which needs the caller's approval (the run pauses for it);
`test.broken_tools` offers `break_forecast`, which raises an exception whose class name is longer
than a run's `reason` column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic_ai import Tool

from app.compositor import LayerConfig, LayerProvider, NoLayerDeps
from app.layers.base import AgentLayer

RECORDS: dict[str, list[str]] = defaultdict(list)

Hook = Literal["create", "resume", "suspend", "delete"]


class RecordingConfig(LayerConfig):
    label: str
    fail_on: Hook | None = None


class RecordingState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: int = 0


class RecordingLayer(AgentLayer[NoLayerDeps, RecordingConfig, RecordingState]):
    type_id = "test.recording"

    def _record(self, step: str) -> None:
        RECORDS[self.config.label].append(step)
        if self.config.fail_on is not None and step == self.config.fail_on:
            raise RuntimeError(f"{self.config.label}: {step} failed on purpose")

    async def on_context_create(self) -> None:
        self.runtime_state.entries += 1
        self._record("create")

    async def on_context_resume(self) -> None:
        self.runtime_state.entries += 1
        self._record("resume")

    async def on_context_suspend(self) -> None:
        self._record("suspend")

    async def on_context_delete(self) -> None:
        self._record("delete")

    def resource_context(self) -> AbstractAsyncContextManager[None]:
        @asynccontextmanager
        async def scope() -> AsyncIterator[None]:
            RECORDS[self.config.label].append("open")
            try:
                yield
            finally:
                RECORDS[self.config.label].append("close")

        return scope()


class ToolsConfig(LayerConfig):
    pass


def lookup_weather(city: str) -> str:
    """Look up the weather of a city."""
    return f"sunny in {city}"


class WeatherToolsLayer(AgentLayer[NoLayerDeps, ToolsConfig]):
    type_id = "test.tools"

    @property
    def tools(self) -> Sequence[Tool[Any]]:
        return [Tool(lookup_weather)]


def delete_file(path: str) -> str:
    """Delete a file (needs approval)."""
    return f"deleted {path}"


class ApprovalToolsLayer(AgentLayer[NoLayerDeps, ToolsConfig]):
    type_id = "test.approval"

    @property
    def tools(self) -> Sequence[Tool[Any]]:
        return [Tool(delete_file, requires_approval=True)]


class AForecastServiceFailureWhoseClassNameIsLongerThanTheReasonColumnHolds(Exception):
    """Raised by `break_forecast`: its name (69 characters) becomes the failed run's reason."""


def break_forecast(city: str) -> str:
    """Forecast the weather of a city (always fails)."""
    raise AForecastServiceFailureWhoseClassNameIsLongerThanTheReasonColumnHolds(city)


class BrokenToolsLayer(AgentLayer[NoLayerDeps, ToolsConfig]):
    type_id = "test.broken_tools"

    @property
    def tools(self) -> Sequence[Tool[Any]]:
        return [Tool(break_forecast)]


TEST_LAYER_PROVIDERS = [
    LayerProvider.from_layer_type(BrokenToolsLayer),
    LayerProvider.from_layer_type(ApprovalToolsLayer),
    LayerProvider.from_layer_type(RecordingLayer),
    LayerProvider.from_layer_type(WeatherToolsLayer),
]
