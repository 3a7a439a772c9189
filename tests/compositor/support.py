"""A recording layer and helpers shared by the compositor tests.

`RecordingLayer` appends one line to a shared journal for every hook and resource step, in the form
`"<label>.<step>"`; a resource exit that sees an error records it as
`"<label>.resource_exit[<ErrorType>: <message>]"`. Its config lists the steps that must fail and the
prompt items and tools it contributes, so tests describe failures as data.
"""

import asyncio
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.compositor import (
    Compositor,
    CompositorSessionSnapshot,
    LayerConfig,
    LayerDeps,
    LayerProvider,
    LifecycleState,
    NoLayerDeps,
    PlainLayer,
)

Step = Literal["resource_enter", "create", "resume", "suspend", "delete", "resource_exit"]
Journal = list[str]


class HookFailure(Exception):
    """What a recording layer raises from a step its config tells it to fail."""


class RecordingConfig(LayerConfig):
    fail: list[Step] = Field(default_factory=list)
    prefix: list[str] = Field(default_factory=list)
    suffix: list[str] = Field(default_factory=list)
    user: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)


class RecordingState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visits: int = 0
    seen: list[str] = Field(default_factory=list)


class _RecordingResource:
    def __init__(self, layer: "RecordingLayer") -> None:
        self._layer = layer

    async def __aenter__(self) -> None:
        await asyncio.sleep(0)
        self._layer.step("resource_enter")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.sleep(0)
        detail = "" if exc is None else f"[{type(exc).__name__}: {exc}]"
        self._layer.step("resource_exit", detail)


class RecordingLayer(PlainLayer[NoLayerDeps, RecordingConfig, RecordingState]):
    """Logs every hook and resource step; fails the steps named in `config.fail`."""

    type_id = "recording"

    def __init__(
        self,
        label: str,
        journal: Journal,
        before: Mapping[Step, Callable[[], None]] | None = None,
    ) -> None:
        super().__init__()
        self.label = label
        self.journal = journal
        self.before = dict(before or {})

    def step(self, step: Step, detail: str = "") -> None:
        callback = self.before.get(step)
        if callback is not None:
            callback()
        self.journal.append(f"{self.label}.{step}{detail}")
        if step in self.config.fail:
            raise HookFailure(f"{self.label}.{step} failed")

    async def on_context_create(self) -> None:
        await asyncio.sleep(0)
        self.step("create")
        self.runtime_state.visits += 1

    async def on_context_resume(self) -> None:
        await asyncio.sleep(0)
        self.step("resume", f"(visits={self.runtime_state.visits})")
        self.runtime_state.visits += 1

    async def on_context_suspend(self) -> None:
        await asyncio.sleep(0)
        self.step("suspend")

    async def on_context_delete(self) -> None:
        await asyncio.sleep(0)
        self.step("delete")

    def resource_context(self) -> _RecordingResource:
        return _RecordingResource(self)

    @property
    def prefix_prompts(self) -> Sequence[str]:
        return self.config.prefix

    @property
    def suffix_prompts(self) -> Sequence[str]:
        return self.config.suffix

    @property
    def user_prompts(self) -> Sequence[str]:
        return self.config.user

    @property
    def tools(self) -> Sequence[Callable[..., Any]]:
        return [_named_tool(name) for name in self.config.tools]


def _named_tool(name: str) -> Callable[[], str]:
    def tool() -> str:
        return name

    tool.__name__ = name
    return tool


class UpstreamDeps(LayerDeps):
    upstream: RecordingLayer


class DependentRecordingLayer(RecordingLayer):
    """A recording layer that needs an earlier recording layer (deps type set explicitly)."""

    type_id = "dependent_recording"
    deps_type = UpstreamDeps


def recording_provider(
    journal: Journal,
    label: str,
    before: Mapping[Step, Callable[[], None]] | None = None,
    layer_type: type[RecordingLayer] = RecordingLayer,
) -> LayerProvider[RecordingLayer]:
    """A provider whose layers log under `label` (the factory sees only the config)."""
    return LayerProvider.from_factory(
        layer_type=layer_type, create=lambda _config: layer_type(label, journal, before)
    )


def recording_compositor(
    journal: Journal,
    *names: str,
    before: Mapping[str, Mapping[Step, Callable[[], None]]] | None = None,
    **transformers: Any,
) -> Compositor:
    """A composition of recording layers named `names`, each logging under its own name."""
    before = before or {}
    return Compositor.from_config(
        {"layers": [{"name": name, "type": "recording"} for name in names]},
        node_providers={
            name: recording_provider(journal, name, before.get(name)) for name in names
        },
        **transformers,
    )


def entered(*names: str) -> list[str]:
    """The journal of entering fresh layers `names` in order."""
    return [line for name in names for line in (f"{name}.resource_enter", f"{name}.create")]


def exited(*names: str, step: Step = "delete", error: str = "") -> list[str]:
    """The journal of exiting layers `names` in the given order with `step`."""
    return [line for name in names for line in (f"{name}.{step}", f"{name}.resource_exit{error}")]


def states(snapshot: CompositorSessionSnapshot | None) -> dict[str, LifecycleState]:
    """The lifecycle state of every layer of a snapshot that must exist."""
    assert snapshot is not None
    return {entry.name: entry.lifecycle_state for entry in snapshot.layers}


def suspended_snapshot(*names: str, visits: int = 1) -> dict[str, Any]:
    """A snapshot in which recording layers `names` are suspended after `visits` visits."""
    return {
        "schema_version": 1,
        "layers": [
            {"name": name, "lifecycle_state": "suspended", "runtime_state": {"visits": visits}}
            for name in names
        ],
    }
