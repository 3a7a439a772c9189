"""`CompositorRun`: one invocation of a composition, from building its layers to its snapshot.

A run is an async context manager used once: `async with run:` builds a fresh layer per node,
enters them in order and, on the way out, exits them in reverse; `run.session_snapshot` is set as
soon as the run is over, whether it ended normally, with an error in the body, or with a failed
enter.

Lifecycle of one slot (every transition happens in this module):

    enter:  NEW --on_context_create--> ACTIVE      SUSPENDED --on_context_resume--> ACTIVE
    exit:   ACTIVE --on_context_suspend--> SUSPENDED     (exit intent SUSPEND)
            ACTIVE --on_context_delete--> CLOSED         (exit intent DELETE, the default)

Invariants:

- A slot becomes ACTIVE only after its enter hook returned; its exit intent is reset to DELETE on
  every enter and can only change while it is ACTIVE. The resource context is entered before the
  enter hook and exited after the exit hook, receiving the error the run propagates at that point.
- If building a layer, opening a resource context or an enter hook fails, the failing slot is left
  as it came in (its resource context closed, its exit hook not run), the slots entered before it
  exit in reverse with their intents, the snapshot is taken and the original error is raised.
- Every ACTIVE slot exits, even when the body or another exit failed. The exit state is set even if
  the exit hook raised. The first error (the body's, if it raised) is what propagates; later errors
  are attached to it as notes (`BaseException.add_note`). Resource contexts cannot suppress errors.
- The snapshot holds every slot in composition order, never an ACTIVE one; a slot that was never
  entered keeps its incoming lifecycle state and runtime state.
- `abandon_on_exit()`: the run no longer owns its layers' persistent state (the caller learned
  that another execution may have taken it over). No exit hook runs, neither suspend nor delete;
  every resource context (process-local resources) is still closed, and there is no snapshot.
"""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, Self, TypeAlias, final, overload

from pydantic import BaseModel

from ._errors import LayerLifecycleError, LayerLookupError, SnapshotError
from ._layers import AnyLayer, LayerT
from ._providers import LayerProvider
from ._schemas import (
    CompositorSessionSnapshot,
    ExitIntent,
    LayerConfig,
    LayerSessionSnapshot,
    LifecycleState,
)

PromptTransformer: TypeAlias = Callable[[list[Any]], Sequence[Any]]
"""Post-processes a run's aggregated (already wrapped) system prompt items."""

UserPromptTransformer: TypeAlias = Callable[[list[Any]], Sequence[Any]]
"""Post-processes a run's aggregated user prompt items."""

ToolTransformer: TypeAlias = Callable[[list[Any]], Sequence[Any]]
"""Post-processes a run's aggregated tools."""


@dataclass(frozen=True, slots=True)
class Transformers:
    """The optional post-processing steps a compositor applies to every run's aggregates."""

    prompt: PromptTransformer | None = None
    user_prompt: UserPromptTransformer | None = None
    tool: ToolTransformer | None = None


@dataclass(frozen=True, slots=True)
class LayerNode:
    """One validated node of a plan: its name, provider and wiring (`field -> earlier layer`)."""

    name: str
    provider: LayerProvider[Any]
    deps: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PreparedLayer:
    """A node with what one run validated for it: config, incoming lifecycle and runtime state."""

    node: LayerNode
    config: LayerConfig
    lifecycle_state: LifecycleState
    # Hydrated from the snapshot; None means a fresh default (no snapshot was given).
    runtime_state: BaseModel | None


class _RunPhase(StrEnum):
    # Created, not entered yet.
    PENDING = "pending"
    # Building layers and running enter hooks.
    ENTERING = "entering"
    # Every layer entered; the body runs.
    ACTIVE = "active"
    # Running exit hooks.
    EXITING = "exiting"
    # Over; the snapshot is taken (unless a runtime state could not be dumped).
    EXITED = "exited"


@dataclass(slots=True, eq=False)
class _Slot:
    prepared: PreparedLayer
    lifecycle_state: LifecycleState
    exit_intent: ExitIntent = ExitIntent.DELETE
    layer: AnyLayer | None = None

    @property
    def name(self) -> str:
        return self.prepared.node.name

    @property
    def live_layer(self) -> AnyLayer:
        if self.layer is None:
            raise LayerLifecycleError(
                f"layer {self.name!r} does not exist yet; layers are built when the run is entered",
                code="run_not_entered",
                layer=self.name,
            )
        return self.layer

    def runtime_state_json(self) -> dict[str, Any]:
        if self.layer is not None:
            state = self.layer.runtime_state
        elif self.prepared.runtime_state is not None:
            state = self.prepared.runtime_state
        else:
            state = self.prepared.node.provider.layer_type.runtime_state_type()
        dumped: dict[str, Any] = state.model_dump(mode="json", by_alias=True, round_trip=True)
        return dumped


class _ErrorLog:
    """The first error of an enter or exit sequence, plus notes about the ones after it."""

    __slots__ = ("_notes", "first")

    def __init__(self) -> None:
        self.first: BaseException | None = None
        self._notes: list[str] = []

    def record(self, error: BaseException, layer: str | None) -> None:
        if self.first is None:
            self.first = error
        elif error is not self.first:
            self._notes.append(f"layer {layer!r} also failed: {error.__class__.__name__}: {error}")

    def attach_notes(self) -> None:
        if self.first is not None:
            for note in self._notes:
                self.first.add_note(note)
        self._notes.clear()


@final
class CompositorRun:
    """One run of a composition; get it from `Compositor.create_run` or `Compositor.enter`."""

    __slots__ = ("_abandon", "_phase", "_resources", "_slots", "_snapshot", "_transformers")

    def __init__(self, prepared: Sequence[PreparedLayer], transformers: Transformers) -> None:
        """Internal: the compositor validates `prepared` before calling this."""
        self._slots = tuple(
            _Slot(prepared=item, lifecycle_state=item.lifecycle_state) for item in prepared
        )
        self._transformers = transformers
        self._phase = _RunPhase.PENDING
        self._resources: dict[str, AbstractAsyncContextManager[None]] = {}
        self._snapshot: CompositorSessionSnapshot | None = None
        self._abandon = False

    # -- entering and exiting ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Build every layer, then enter them in order (see the module docstring on failures).

        Raises:
            LayerLifecycleError: the run was entered before (`run_already_entered`).
            LayerProviderError: a provider handed back an unusable instance.
            Whatever a factory, resource context or enter hook raised.
        """
        if self._phase is not _RunPhase.PENDING:
            raise LayerLifecycleError(
                "this run was entered before; create a new run from the compositor",
                code="run_already_entered",
            )
        self._phase = _RunPhase.ENTERING
        errors = _ErrorLog()
        entered: list[_Slot] = []
        try:
            self._build_layers()
            for slot in self._slots:
                await self._enter_slot(slot, errors)
                entered.append(slot)
        except BaseException as error:
            errors.record(error, None)
            for slot in reversed(entered):
                await self._exit_slot(slot, errors)
            self._finish(errors)
            errors.attach_notes()
            raise
        self._phase = _RunPhase.ACTIVE
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Exit every layer in reverse, take the snapshot, then raise the first error.

        An error from the body propagates unchanged (exit errors become notes on it); otherwise
        the first exit error is raised.
        """
        if self._phase is not _RunPhase.ACTIVE:
            raise LayerLifecycleError(
                f"the run cannot exit while it is {self._phase}", code="run_not_active"
            )
        self._phase = _RunPhase.EXITING
        errors = _ErrorLog()
        if exc is not None:
            errors.record(exc, None)
        for slot in reversed(self._slots):
            await self._exit_slot(slot, errors)
        self._finish(errors)
        errors.attach_notes()
        if errors.first is not None and errors.first is not exc:
            raise errors.first

    def _build_layers(self) -> None:
        built: dict[str, AnyLayer] = {}
        for slot in self._slots:
            node = slot.prepared.node
            layer = node.provider.create_layer(slot.prepared.config, layer=node.name)
            if slot.prepared.runtime_state is not None:
                layer.runtime_state = slot.prepared.runtime_state
            deps_type = node.provider.layer_type.deps_type
            layer.deps = deps_type(**{field: built[target] for field, target in node.deps.items()})
            built[node.name] = layer
            slot.layer = layer

    async def _enter_slot(self, slot: _Slot, errors: _ErrorLog) -> None:
        layer = slot.live_layer
        resource = layer.resource_context()
        await resource.__aenter__()
        slot.exit_intent = ExitIntent.DELETE
        try:
            if slot.lifecycle_state is LifecycleState.NEW:
                await layer.on_context_create()
            else:
                await layer.on_context_resume()
        except BaseException as error:
            errors.record(error, slot.name)
            await self._close_resource(slot.name, resource, errors)
            raise
        self._resources[slot.name] = resource
        slot.lifecycle_state = LifecycleState.ACTIVE

    async def _exit_slot(self, slot: _Slot, errors: _ErrorLog) -> None:
        if self._abandon:
            await self._close_resource(slot.name, self._resources.pop(slot.name), errors)
            return
        layer = slot.live_layer
        suspend = slot.exit_intent is ExitIntent.SUSPEND
        try:
            if suspend:
                await layer.on_context_suspend()
            else:
                await layer.on_context_delete()
        except BaseException as error:
            errors.record(error, slot.name)
        slot.lifecycle_state = LifecycleState.SUSPENDED if suspend else LifecycleState.CLOSED
        await self._close_resource(slot.name, self._resources.pop(slot.name), errors)

    async def _close_resource(
        self, name: str, resource: AbstractAsyncContextManager[None], errors: _ErrorLog
    ) -> None:
        error = errors.first
        try:
            # The return value is ignored: a resource context cannot suppress the run's error.
            await resource.__aexit__(
                None if error is None else type(error),
                error,
                None if error is None else error.__traceback__,
            )
        except BaseException as raised:
            errors.record(raised, name)

    def _finish(self, errors: _ErrorLog) -> None:
        if self._abandon:  # the layers' states are someone else's now: nothing to report
            self._phase = _RunPhase.EXITED
            return
        entries: list[LayerSessionSnapshot] = []
        for slot in self._slots:
            try:
                runtime_state = slot.runtime_state_json()
            except Exception as error:  # a layer stored something JSON cannot hold
                failure = SnapshotError(
                    f"layer {slot.name!r}: the runtime state cannot be dumped as JSON: {error}",
                    code="unserializable_runtime_state",
                    layer=slot.name,
                )
                failure.__cause__ = error
                errors.record(failure, slot.name)
                continue
            entries.append(
                LayerSessionSnapshot(
                    name=slot.name,
                    lifecycle_state=slot.lifecycle_state,
                    runtime_state=runtime_state,
                )
            )
        if len(entries) == len(self._slots):
            self._snapshot = CompositorSessionSnapshot(layers=entries)
        self._phase = _RunPhase.EXITED

    # -- inspection -------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """The layer names in enter order."""
        return tuple(slot.name for slot in self._slots)

    @property
    def layers(self) -> Mapping[str, AnyLayer]:
        """The live layers by name, in enter order (`LayerLifecycleError` before entering)."""
        return MappingProxyType({slot.name: slot.live_layer for slot in self._slots})

    @overload
    def get_layer(self, name: str) -> AnyLayer: ...

    @overload
    def get_layer(self, name: str, type: type[LayerT]) -> LayerT: ...

    def get_layer(self, name: str, type: type[AnyLayer] | None = None) -> AnyLayer:
        """The live layer `name`, checked to be an instance of `type` when given.

        Raises:
            LayerLookupError: `name` is no layer (`unknown_layer`) or the layer is not a `type`
                (`wrong_layer_type`).
            LayerLifecycleError: the layers are not built yet (`run_not_entered`).
        """
        layer = self._slot(name).live_layer
        if type is not None and not isinstance(layer, type):
            raise LayerLookupError(
                f"layer {name!r} is a {layer.__class__.__name__}, not a {type.__name__}",
                code="wrong_layer_type",
                layer=name,
            )
        return layer

    def lifecycle_state(self, name: str) -> LifecycleState:
        """The current lifecycle state of layer `name`."""
        return self._slot(name).lifecycle_state

    def exit_intent(self, name: str) -> ExitIntent:
        """What exiting layer `name` will do (DELETE unless changed while it is active)."""
        return self._slot(name).exit_intent

    @property
    def session_snapshot(self) -> CompositorSessionSnapshot | None:
        """The snapshot taken when the run ended; `None` before that."""
        return self._snapshot

    # -- exit intents -----------------------------------------------------------------------------

    def abandon_on_exit(self) -> None:
        """Exit without any exit hook, only closing resource contexts; no snapshot.

        For an execution that lost its claim on the layers' persistent state. Only while
        active (`run_not_active` otherwise); it cannot be undone.
        """
        if self._phase is not _RunPhase.ACTIVE:
            raise LayerLifecycleError(
                f"exit intents can only change while the run is active, not {self._phase}",
                code="run_not_active",
            )
        self._abandon = True

    def suspend_on_exit(self) -> None:
        """Make every layer suspend on exit (the session can resume). All must be ACTIVE."""
        self._set_exit_intent(self._slots, ExitIntent.SUSPEND)

    def delete_on_exit(self) -> None:
        """Make every layer delete on exit (the session ends). All must be ACTIVE."""
        self._set_exit_intent(self._slots, ExitIntent.DELETE)

    def suspend_layer_on_exit(self, name: str) -> None:
        """Make layer `name` suspend on exit; it must be ACTIVE."""
        self._set_exit_intent((self._slot(name),), ExitIntent.SUSPEND)

    def delete_layer_on_exit(self, name: str) -> None:
        """Make layer `name` delete on exit; it must be ACTIVE."""
        self._set_exit_intent((self._slot(name),), ExitIntent.DELETE)

    def _set_exit_intent(self, slots: Sequence[_Slot], intent: ExitIntent) -> None:
        for slot in slots:
            if slot.lifecycle_state is not LifecycleState.ACTIVE:
                raise LayerLifecycleError(
                    f"layer {slot.name!r} is {slot.lifecycle_state}, not active; its exit intent "
                    "can only change while it is active",
                    code="layer_not_active",
                    layer=slot.name,
                )
        for slot in slots:
            slot.exit_intent = intent

    # -- aggregation ------------------------------------------------------------------------------

    @property
    def prompts(self) -> list[Any]:
        """System prompt items: prefix prompts in order, then suffix prompts in reverse order.

        Each item goes through its layer's `wrap_prompt`, the list through the prompt transformer.
        Only while the run is active.
        """
        layers = self._active_layers()
        items = [layer.wrap_prompt(item) for layer in layers for item in layer.prefix_prompts]
        items += [
            layer.wrap_prompt(item) for layer in reversed(layers) for item in layer.suffix_prompts
        ]
        return _transform(self._transformers.prompt, items)

    @property
    def user_prompts(self) -> list[Any]:
        """User prompt items in layer order, wrapped and transformed. Only while active."""
        layers = self._active_layers()
        items = [layer.wrap_user_prompt(item) for layer in layers for item in layer.user_prompts]
        return _transform(self._transformers.user_prompt, items)

    @property
    def tools(self) -> list[Any]:
        """Tools in layer order, wrapped and transformed. Only while active."""
        layers = self._active_layers()
        items = [layer.wrap_tool(item) for layer in layers for item in layer.tools]
        return _transform(self._transformers.tool, items)

    def _active_layers(self) -> list[AnyLayer]:
        if self._phase is not _RunPhase.ACTIVE:
            raise LayerLifecycleError(
                f"prompts and tools are only available while the run is active (it is "
                f"{self._phase})",
                code="run_not_active",
            )
        return [slot.live_layer for slot in self._slots]

    def _slot(self, name: str) -> _Slot:
        for slot in self._slots:
            if slot.name == name:
                return slot
        raise LayerLookupError(
            f"layer {name!r} is not part of the composition; layers: {list(self.names)}",
            code="unknown_layer",
            layer=name,
        )


def _transform(
    transformer: Callable[[list[Any]], Sequence[Any]] | None, items: list[Any]
) -> list[Any]:
    return items if transformer is None else list(transformer(items))
