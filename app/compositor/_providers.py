"""`LayerProvider`: how a server builds a fresh layer of one type from a validated config.

A provider is the allow-list entry for a layer type: compositions name types, and only types with a
provider can be built. `from_factory` lets the server inject what clients must never supply
(credentials, endpoints, shared clients): the factory sees only the validated config.

Invariants:

- Configs are validated against the layer's `config_type` (unknown fields rejected, `None` meaning
  `{}`); failures are `LayerConfigError` (`invalid_layer_config`) naming the layer.
- Every `create_layer` call hands back a fresh instance of the provider's layer type, with `config`
  set to the validated config. An instance that was handed out before, by any provider, is refused.
- Providers hold no per-run state, so one provider serves any number of concurrent runs.
"""

from collections.abc import Callable
from typing import Any, Generic, final

from pydantic import ValidationError

from ._errors import LayerConfigError, LayerDefinitionError, LayerProviderError
from ._layers import ConfigT, Layer, LayerT, ensure_concrete_layer_type
from ._schemas import LayerConfig, describe_validation_error, parse_model


@final
class LayerProvider(Generic[LayerT]):
    """A reusable construction plan for one layer class; build it with a classmethod."""

    __slots__ = ("_create", "_layer_type")

    def __init__(self, layer_type: type[LayerT], create: Callable[[Any], LayerT]) -> None:
        """Prefer `from_layer_type` or `from_factory`; this checks `layer_type` the same way."""
        _check_layer_type(layer_type)
        self._layer_type = layer_type
        self._create = create

    @classmethod
    def from_layer_type(cls, layer_type: type[LayerT]) -> "LayerProvider[LayerT]":
        """Build layers with `layer_type.from_config(config)`.

        Raises:
            LayerDefinitionError: `layer_type` is not a Layer subclass (`not_a_layer_type`) or is
                a generic template (`generic_layer_type`).
        """
        _check_layer_type(layer_type)
        return cls(layer_type, layer_type.from_config)

    @classmethod
    def from_factory(
        cls, *, layer_type: type[LayerT], create: Callable[[ConfigT], LayerT]
    ) -> "LayerProvider[LayerT]":
        """Build layers with `create(config)`, which receives only the validated config.

        The factory must return a new instance of `layer_type` (or a subclass) on every call.
        """
        return cls(layer_type, create)

    @property
    def layer_type(self) -> type[LayerT]:
        """The layer class this provider builds."""
        return self._layer_type

    @property
    def type_id(self) -> str | None:
        """The layer class's `type_id`: the name compositions use for it."""
        return self._layer_type.type_id

    @property
    def config_type(self) -> type[LayerConfig]:
        """The config model the layer class declares."""
        return self._layer_type.config_type

    def validate_config(self, raw: object = None, *, layer: str | None = None) -> LayerConfig:
        """Validate a config for this layer type.

        `raw` may be `None` (meaning `{}`), a mapping, a JSON `str`/`bytes` or a model instance
        (re-validated). `layer` names the composition node in error messages.

        Raises:
            LayerConfigError: the config does not validate (`invalid_layer_config`).
        """
        try:
            return parse_model(self.config_type, {} if raw is None else raw)
        except ValidationError as error:
            raise LayerConfigError(
                f"{self._describe(layer)}: invalid config: {describe_validation_error(error)}",
                code="invalid_layer_config",
                layer=layer,
            ) from error

    def create_layer(self, config: object = None, *, layer: str | None = None) -> LayerT:
        """Validate `config` again and build a fresh layer from it.

        Errors raised by the factory itself propagate unchanged.

        Raises:
            LayerConfigError: the config does not validate.
            LayerProviderError: the factory returned something that is not an instance of the layer
                type (`wrong_layer_instance`) or an instance handed out before
                (`layer_instance_reused`).
        """
        validated = self.validate_config(config, layer=layer)
        instance = self._create(validated)
        if not isinstance(instance, self._layer_type):
            raise LayerProviderError(
                f"{self._describe(layer)}: the factory returned {type(instance).__name__}, "
                f"not a {self._layer_type.__name__}",
                code="wrong_layer_instance",
                layer=layer,
            )
        if instance._compositor_issued:
            raise LayerProviderError(
                f"{self._describe(layer)}: the factory returned a layer instance that was already "
                "used; layers are per-run and must be built fresh on every call",
                code="layer_instance_reused",
                layer=layer,
            )
        instance._compositor_issued = True
        instance.config = validated
        return instance

    def _describe(self, layer: str | None) -> str:
        kind = f"type {self.type_id!r}" if self.type_id else self._layer_type.__name__
        return f"layer {layer!r} ({kind})" if layer is not None else f"layer {kind}"

    def __repr__(self) -> str:
        return f"LayerProvider({self._layer_type.__name__}, type_id={self.type_id!r})"


def _check_layer_type(layer_type: object) -> None:
    if not (isinstance(layer_type, type) and issubclass(layer_type, Layer)):
        raise LayerDefinitionError(
            f"a provider needs a Layer subclass, got {layer_type!r}",
            code="not_a_layer_type",
        )
    ensure_concrete_layer_type(layer_type)
