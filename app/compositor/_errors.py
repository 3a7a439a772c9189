"""The compositor's error hierarchy.

Every error the compositor raises on its own account is a `CompositorError`. Errors raised by layer
code (hooks, resource contexts, factories) are never wrapped: they propagate as they were raised.

Invariants:

- Each error carries a stable machine-readable `code` (a string the HTTP API exposes verbatim) and
  a `layer` naming the offending layer when one is at fault (`None` otherwise). Messages name that
  layer too, so a log line is useful without the attributes.
- Codes are instance-level and chosen at the raise site, but each class declares the exact set of
  codes it may carry in `codes`; constructing an error with a code outside that set is a bug and
  raises `ValueError`. The list below is the contract.

Codes by class (the parent built-in exception in brackets):

- `LayerDefinitionError` [TypeError]: `unresolved_deps_type`, `invalid_deps_type`,
  `invalid_config_type`, `invalid_runtime_state_type`, `invalid_dependency_annotation`,
  `generic_layer_type`, `not_a_layer_type`.
- `LayerDepsError` [TypeError]: `missing_dependency`, `unknown_dependency`, `wrong_dependency_type`.
- `CompositorConfigError` [ValueError]: `invalid_compositor_config`, `config_version_mismatch`,
  `empty_layer_name`, `duplicate_layer_name`, `unknown_layer_type`, `missing_type_id`,
  `duplicate_provider_type`, `unknown_node_provider`, `unknown_dependency_field`,
  `dependency_not_found`, `dependency_order`, `missing_dependency`, `wrong_dependency_type`.
- `LayerConfigError` [ValueError]: `invalid_layer_config`, `unknown_config_key`.
- `SnapshotError` [ValueError]: `invalid_snapshot`, `snapshot_version_mismatch`,
  `snapshot_layers_mismatch`, `snapshot_layer_closed`, `snapshot_layer_active`,
  `invalid_runtime_state`, `unserializable_runtime_state`.
- `LayerProviderError` [TypeError]: `wrong_layer_instance`, `layer_instance_reused`.
- `LayerLifecycleError` [RuntimeError]: `layer_not_active`, `run_not_active`, `run_not_entered`,
  `run_already_entered`.
- `LayerLookupError` [LookupError]: `unknown_layer`, `wrong_layer_type`.
"""

from typing import ClassVar

__all__ = [
    "CompositorConfigError",
    "CompositorError",
    "LayerConfigError",
    "LayerDefinitionError",
    "LayerDepsError",
    "LayerLifecycleError",
    "LayerLookupError",
    "LayerProviderError",
    "SnapshotError",
]


class CompositorError(Exception):
    """Root of every error the compositor raises itself.

    Attributes:
        message: the human-readable message (also `str(error)`).
        code: a stable identifier from the class's `codes`.
        layer: the name of the offending layer, or `None` when no single layer is at fault.
    """

    codes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, message: str, *, code: str, layer: str | None = None) -> None:
        if code not in type(self).codes:
            raise ValueError(f"{type(self).__name__} does not define the error code {code!r}")
        super().__init__(message)
        self.message = message
        self.code = code
        self.layer = layer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, layer={self.layer!r})"


class LayerDefinitionError(CompositorError, TypeError):
    """A layer class (or its deps class) is defined in a way the compositor cannot use.

    Raised at class creation, or when a generic template layer class is instantiated or given to
    a provider.
    """

    codes = frozenset(
        {
            "unresolved_deps_type",
            "invalid_deps_type",
            "invalid_config_type",
            "invalid_runtime_state_type",
            "invalid_dependency_annotation",
            "generic_layer_type",
            "not_a_layer_type",
        }
    )


class LayerDepsError(CompositorError, TypeError):
    """A `LayerDeps` container was built with missing, unknown or wrongly typed layers."""

    codes = frozenset({"missing_dependency", "unknown_dependency", "wrong_dependency_type"})


class CompositorConfigError(CompositorError, ValueError):
    """A composition plan cannot be built: bad names, types, providers or dependencies."""

    codes = frozenset(
        {
            "invalid_compositor_config",
            "config_version_mismatch",
            "empty_layer_name",
            "duplicate_layer_name",
            "unknown_layer_type",
            "missing_type_id",
            "duplicate_provider_type",
            "unknown_node_provider",
            "unknown_dependency_field",
            "dependency_not_found",
            "dependency_order",
            "missing_dependency",
            "wrong_dependency_type",
        }
    )


class LayerConfigError(CompositorError, ValueError):
    """A per-run layer config fails validation or is keyed by a name that is no layer."""

    codes = frozenset({"invalid_layer_config", "unknown_config_key"})


class SnapshotError(CompositorError, ValueError):
    """A session snapshot does not fit the composition, or a runtime state cannot be dumped."""

    codes = frozenset(
        {
            "invalid_snapshot",
            "snapshot_version_mismatch",
            "snapshot_layers_mismatch",
            "snapshot_layer_closed",
            "snapshot_layer_active",
            "invalid_runtime_state",
            "unserializable_runtime_state",
        }
    )


class LayerProviderError(CompositorError, TypeError):
    """A provider's factory handed back something other than a fresh instance of its layer type."""

    codes = frozenset({"wrong_layer_instance", "layer_instance_reused"})


class LayerLifecycleError(CompositorError, RuntimeError):
    """An operation does not fit the current lifecycle state of a run or one of its layers."""

    codes = frozenset(
        {"layer_not_active", "run_not_active", "run_not_entered", "run_already_entered"}
    )


class LayerLookupError(CompositorError, LookupError):
    """A layer name is not part of the composition, or the layer is not of the requested type."""

    codes = frozenset({"unknown_layer", "wrong_layer_type"})
