"""Lifecycle enums, config bases and the external DTOs of the compositor.

The DTOs here are what crosses process boundaries: the composition plan (`CompositorConfig`) and the
session snapshot a run leaves behind (`CompositorSessionSnapshot`). They are pydantic models that
forbid unknown fields.

Invariants:

- Inputs accepted at a boundary (a model instance, a mapping, a JSON `str` or `bytes`) go through
  `parse_model`, which re-validates model instances from a dump, so an instance mutated after
  construction cannot slip past its validators.
- A snapshot records, per layer and in composition order, the lifecycle state and the runtime state
  as JSON. Configs are never part of a snapshot.
"""

from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

CONFIG_SCHEMA_VERSION = 1
"""The only `CompositorConfig.schema_version` this library understands."""

SNAPSHOT_SCHEMA_VERSION = 1
"""The only `CompositorSessionSnapshot.schema_version` this library writes and accepts."""


class LifecycleState(StrEnum):
    """Where one layer slot stands between runs (and, while a run is active, within it)."""

    # Never entered; the next enter runs `on_context_create`.
    NEW = "new"
    # Entered and not yet exited. Internal only: no snapshot written by a run holds it, and a
    # snapshot that does is refused.
    ACTIVE = "active"
    # Exited with the SUSPEND intent; the next enter runs `on_context_resume`.
    SUSPENDED = "suspended"
    # Exited with the DELETE intent; the layer's resources are released and it cannot be entered
    # again.
    CLOSED = "closed"


class ExitIntent(StrEnum):
    """What exiting an active layer does; DELETE unless changed while the layer is active."""

    # Run `on_context_delete` and end in CLOSED.
    DELETE = "delete"
    # Run `on_context_suspend` and end in SUSPENDED, so a later run can resume.
    SUSPEND = "suspend"


class LayerConfig(BaseModel):
    """Base of per-run layer configs: validated data supplied with each run; unknown fields fail."""

    model_config = ConfigDict(extra="forbid")


class EmptyLayerConfig(LayerConfig):
    """The config of a layer that takes no settings."""


class EmptyRuntimeState(BaseModel):
    """The runtime state of a layer that keeps nothing between runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LayerNodeConfig(BaseModel):
    """One node of a composition: a named layer of a registered type and its dependency wiring.

    `deps` maps a field of the layer's deps class to the name of an earlier node. `metadata` is
    free-form JSON carried along for the caller; the compositor does not interpret it.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    deps: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class CompositorConfig(BaseModel):
    """A composition plan: layer nodes in enter order (dependencies point to earlier nodes)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = CONFIG_SCHEMA_VERSION
    layers: list[LayerNodeConfig]


class LayerSessionSnapshot(BaseModel):
    """The persisted part of one layer slot: its lifecycle state and its runtime state as JSON."""

    model_config = ConfigDict(extra="forbid")

    name: str
    lifecycle_state: LifecycleState
    runtime_state: dict[str, JsonValue] = Field(default_factory=dict)


class CompositorSessionSnapshot(BaseModel):
    """The state a run leaves for the next run of the same session, one entry per layer in order."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SNAPSHOT_SCHEMA_VERSION
    layers: list[LayerSessionSnapshot]


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_model(model_type: type[ModelT], raw: object) -> ModelT:
    """Validate boundary input as `model_type`.

    `raw` may be a model instance (dumped and validated again), a JSON `str`/`bytes`, or anything
    `model_validate` accepts. Raises `pydantic.ValidationError`; callers translate it.
    """
    if isinstance(raw, BaseModel):
        # No serializer warnings: an instance mutated into an invalid state is rejected below.
        raw = raw.model_dump(by_alias=True, round_trip=True, warnings=False)
    if isinstance(raw, str | bytes | bytearray):
        return model_type.model_validate_json(raw)
    return model_type.model_validate(raw)


def describe_validation_error(error: ValidationError) -> str:
    """Summarise a pydantic error on one line: `location: message` pairs joined by `; `."""
    parts = []
    for detail in error.errors(include_url=False):
        location = ".".join(str(part) for part in detail["loc"]) or "(root)"
        parts.append(f"{location}: {detail['msg']}")
    return "; ".join(parts)
