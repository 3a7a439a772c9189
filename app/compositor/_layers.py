"""The `Layer` base class: what one layer contributes to a run and how it enters and exits.

A layer is invocation-scoped: a provider builds a fresh instance for every run, the compositor
binds its `deps` and hydrates its `runtime_state`, then drives its hooks. Only `runtime_state`
outlives the run (through the session snapshot); live resources belong in `resource_context()`.

Invariants:

- `deps_type`, `config_type` and `runtime_state_type` are resolved when the class is created: an
  explicit class attribute wins, then a value inherited from a concrete ancestor, then the generic
  arguments (followed through intermediate generic subclasses). A config type defaults to
  `EmptyLayerConfig` and a runtime state type to `EmptyRuntimeState`; a deps type has no default.
  A class that leaves one of them as an open type parameter is a generic template: it can be
  subclassed but not instantiated.
- Invalid types fail at class creation with a `LayerDefinitionError`: a deps type that is not a
  `LayerDeps`, a config type that is not a `LayerConfig`, a runtime state type that is not a
  pydantic model or has a field without a default (a fresh state is built from no arguments).
- Hooks take no arguments and default to no-ops. The resource context is entered before the enter
  hook and exited after the exit hook.
"""

import typing
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, ClassVar, Generic, Self, TypeAlias, cast, get_args, get_origin

from pydantic import BaseModel
from typing_extensions import TypeVar

from ._deps import LayerDeps
from ._errors import LayerDefinitionError
from ._schemas import EmptyLayerConfig, EmptyRuntimeState, LayerConfig

DepsT = TypeVar("DepsT", bound=LayerDeps)
PromptT = TypeVar("PromptT")
UserPromptT = TypeVar("UserPromptT")
ToolT = TypeVar("ToolT")
ConfigT = TypeVar("ConfigT", bound=LayerConfig, default=EmptyLayerConfig)
RuntimeStateT = TypeVar("RuntimeStateT", bound=BaseModel, default=EmptyRuntimeState)

_TYPE_ATTRIBUTES = ("deps_type", "config_type", "runtime_state_type")
_LAYER_PARAMETERS: tuple[object, ...] = (DepsT, PromptT, UserPromptT, ToolT, ConfigT, RuntimeStateT)
# The parameters behind each of _TYPE_ATTRIBUTES, in the same order.
_TYPE_PARAMETERS: tuple[object, ...] = (DepsT, ConfigT, RuntimeStateT)
# What an attribute falls back to when nothing binds it; a deps type has no fallback.
_DEFAULT_TYPES: dict[str, type | None] = {
    "deps_type": None,
    "config_type": EmptyLayerConfig,
    "runtime_state_type": EmptyRuntimeState,
}


class Layer(Generic[DepsT, PromptT, UserPromptT, ToolT, ConfigT, RuntimeStateT]):
    """Base class of every layer.

    Type parameters: the deps class, the family's prompt, user prompt and tool item types, the
    config model and the runtime state model (the last two default to the empty ones).

    Authoring surface (read-only properties returning sequences, empty by default):
    `prefix_prompts`, `suffix_prompts`, `user_prompts`, `tools`. A family (such as `PlainLayer`)
    fixes the item types and implements `wrap_prompt`, `wrap_user_prompt` and `wrap_tool`, which
    turn an item into what the run aggregates (the base returns items unchanged).

    Instance attributes: `config` (set by `from_config` or the provider), `deps` (bound by the
    compositor before any hook), `runtime_state` (a fresh default from construction, replaced by
    the snapshot's state on resume). Subclasses that define `__init__` must call
    `super().__init__()`.
    """

    type_id: ClassVar[str | None] = None
    """The name providers register this layer under (`LayerNodeConfig.type`)."""

    deps_type: ClassVar[type[LayerDeps]]
    config_type: ClassVar[type[LayerConfig]]
    runtime_state_type: ClassVar[type[BaseModel]]

    # Type attributes this class leaves open (a generic template); set by __init_subclass__.
    _open_type_attributes: ClassVar[tuple[str, ...]] = _TYPE_ATTRIBUTES
    # Set by LayerProvider once the instance has been handed to a run; a reused instance is refused.
    _compositor_issued: bool = False

    config: ConfigT
    deps: DepsT
    runtime_state: RuntimeStateT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        bindings = _type_bindings(cls)
        parameters = set(getattr(cls, "__parameters__", ()))
        open_attributes: list[str] = []
        for attribute, type_var in zip(_TYPE_ATTRIBUTES, _TYPE_PARAMETERS, strict=True):
            value = _resolve_type_attribute(cls, attribute, bindings[type_var], parameters)
            if value is _OPEN:
                open_attributes.append(attribute)
                continue
            if value is None:
                value = _DEFAULT_TYPES[attribute]
            _check_type_attribute(cls, attribute, value)
            setattr(cls, attribute, value)
        cls._open_type_attributes = tuple(open_attributes)

    def __init__(self) -> None:
        ensure_concrete_layer_type(type(self))
        self.runtime_state = cast(RuntimeStateT, type(self).runtime_state_type())

    @classmethod
    def from_config(cls, config: ConfigT) -> Self:
        """Build a layer for one run from its validated config.

        The default calls the no-argument constructor and sets `config`; layers whose constructor
        needs more override this or are registered with `LayerProvider.from_factory`.
        """
        layer = cls()
        layer.config = config
        return layer

    # -- authoring surface ------------------------------------------------------------------------

    @property
    def prefix_prompts(self) -> Sequence[PromptT]:
        """System prompt fragments placed before those of later layers."""
        return ()

    @property
    def suffix_prompts(self) -> Sequence[PromptT]:
        """System prompt fragments placed after those of later layers (aggregated in reverse)."""
        return ()

    @property
    def user_prompts(self) -> Sequence[UserPromptT]:
        """User prompt fragments, aggregated in composition order."""
        return ()

    @property
    def tools(self) -> Sequence[ToolT]:
        """Tools offered to the agent, aggregated in composition order."""
        return ()

    # -- family hooks -----------------------------------------------------------------------------

    def wrap_prompt(self, prompt: PromptT) -> Any:
        """Turn one prompt item into what `CompositorRun.prompts` holds (unchanged by default)."""
        return prompt

    def wrap_user_prompt(self, user_prompt: UserPromptT) -> Any:
        """Turn one user prompt item into what `CompositorRun.user_prompts` holds."""
        return user_prompt

    def wrap_tool(self, tool: ToolT) -> Any:
        """Turn one tool into what `CompositorRun.tools` holds (unchanged by default)."""
        return tool

    # -- lifecycle hooks --------------------------------------------------------------------------

    async def on_context_create(self) -> None:
        """Enter from NEW: set up what the session needs for the first time."""

    async def on_context_resume(self) -> None:
        """Enter from SUSPENDED: `runtime_state` already holds the snapshot's state."""

    async def on_context_suspend(self) -> None:
        """Exit with SUSPEND: keep what a later run needs in `runtime_state`."""

    async def on_context_delete(self) -> None:
        """Exit with DELETE: release everything the session held; the slot ends CLOSED."""

    def resource_context(self) -> AbstractAsyncContextManager[None]:
        """Scope for live, non-serializable resources (clients, processes) of one run.

        Entered before the enter hook and exited after the exit hook; on exit it receives the error
        the run is propagating at that point, if any. Its return value cannot suppress that error.
        Never snapshotted. The default does nothing.
        """
        return nullcontext()


AnyLayer: TypeAlias = Layer[Any, Any, Any, Any, Any, Any]

LayerT = TypeVar("LayerT", bound=AnyLayer)


def ensure_concrete_layer_type(layer_type: type[AnyLayer]) -> None:
    """Raise `LayerDefinitionError` (`generic_layer_type`) if `layer_type` is a generic template."""
    if layer_type._open_type_attributes:
        raise LayerDefinitionError(
            f"{layer_type.__name__} is a generic layer template (open: "
            f"{', '.join(layer_type._open_type_attributes)}); use a subclass that binds them",
            code="generic_layer_type",
        )


class _Open:
    """Marker: a type attribute is still an open type parameter of the class."""


_OPEN = _Open()


def _type_bindings(cls: type) -> dict[object, object]:
    """Map `Layer`'s type parameters to what `cls` binds them to (a TypeVar while still open)."""
    if cls is Layer:
        return {parameter: parameter for parameter in _LAYER_PARAMETERS}
    for base in cls.__dict__.get("__orig_bases__", cls.__bases__):
        origin = get_origin(base) or base
        if not (isinstance(origin, type) and issubclass(origin, Layer)):
            continue
        bindings = _type_bindings(origin)
        arguments = get_args(base)
        if arguments:
            origin_parameters = getattr(origin, "__parameters__", ())
            substitution = dict(zip(origin_parameters, arguments, strict=False))
            bindings = {
                parameter: substitution.get(bound, bound)
                if isinstance(bound, typing.TypeVar)
                else bound
                for parameter, bound in bindings.items()
            }
        return bindings
    raise AssertionError(f"{cls!r} does not derive from Layer")  # pragma: no cover


def _resolve_type_attribute(
    cls: type, attribute: str, bound: object, parameters: set[object]
) -> object:
    if attribute in cls.__dict__:
        return cls.__dict__[attribute]
    inherited = getattr(cls, attribute, None)
    if inherited is not None:
        return inherited
    if not isinstance(bound, typing.TypeVar):
        return bound
    if bound in parameters:
        return _OPEN
    return None


def _check_type_attribute(cls: type, attribute: str, value: object) -> None:
    name = cls.__name__
    if attribute == "deps_type":
        if value is None:
            raise LayerDefinitionError(
                f"{name}: cannot resolve the deps type; subclass Layer[YourDeps, ...] (or a "
                "family with its deps argument) or set `deps_type`",
                code="unresolved_deps_type",
            )
        if not (isinstance(value, type) and issubclass(value, LayerDeps)):
            raise LayerDefinitionError(
                f"{name}: the deps type must be a LayerDeps subclass, got {value!r}",
                code="invalid_deps_type",
            )
    elif attribute == "config_type":
        if not (isinstance(value, type) and issubclass(value, LayerConfig)):
            raise LayerDefinitionError(
                f"{name}: the config type must be a LayerConfig subclass, got {value!r}",
                code="invalid_config_type",
            )
    else:
        if not (isinstance(value, type) and issubclass(value, BaseModel)):
            raise LayerDefinitionError(
                f"{name}: the runtime state type must be a pydantic model, got {value!r}",
                code="invalid_runtime_state_type",
            )
        required = [field for field, info in value.model_fields.items() if info.is_required()]
        if required:
            raise LayerDefinitionError(
                f"{name}: every runtime state field needs a default (a fresh state is built from "
                f"no arguments); {value.__name__} requires {required}",
                code="invalid_runtime_state_type",
            )
