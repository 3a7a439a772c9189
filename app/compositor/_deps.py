"""Typed containers for a layer's dependencies on earlier layers of the same composition.

A deps class subclasses `LayerDeps` and annotates one member per dependency:

    class AgentDeps(LayerDeps):
        llm: LlmLayer               # required
        history: HistoryLayer | None  # optional: `None` when the composition does not wire it

Invariants:

- Every annotated member (public, not a `ClassVar`) is a `Layer` subclass, a parametrised generic
  `Layer` subclass, or one of those `| None`. Anything else is a `LayerDefinitionError`, raised when
  the class is created, or on first use if an annotation names a class defined later.
- An instance holds exactly the declared members: a missing required dependency, an unknown one, or
  a layer of the wrong type is a `LayerDepsError`; a missing optional dependency is `None`.
"""

import contextlib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, NoneType, UnionType
from typing import TYPE_CHECKING, Any, ClassVar, get_args, get_origin

from ._errors import LayerDefinitionError, LayerDepsError

if TYPE_CHECKING:
    from ._layers import Layer


@dataclass(frozen=True, slots=True)
class DependencyField:
    """One declared dependency: member name, the layer class it needs, whether it may be None."""

    name: str
    layer_type: "type[Layer[Any, Any, Any, Any, Any, Any]]"
    optional: bool


class LayerDeps:
    """Base of deps classes; see the module docstring for how members are declared."""

    # Resolved members of this exact class (never inherited; see `dependency_fields`).
    _fields_cache: ClassVar[Mapping[str, DependencyField] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields_cache = None
        # NameError: an annotation names a class that does not exist yet (for instance a layer
        # that depends on its own type); `dependency_fields` resolves it on first use.
        with contextlib.suppress(NameError):
            cls._fields_cache = _resolve_fields(cls)

    def __init__(self, **layers: "Layer[Any, Any, Any, Any, Any, Any] | None") -> None:
        """Bind `layers` to the declared members.

        Raises:
            LayerDepsError: a name is not declared (`unknown_dependency`), a required member is
                missing or `None` (`missing_dependency`), or a layer is not an instance of the
                declared class (`wrong_dependency_type`).
        """
        owner = type(self).__name__
        fields = dependency_fields(type(self))
        unknown = sorted(set(layers) - set(fields))
        if unknown:
            raise LayerDepsError(
                f"{owner}: unknown dependencies {unknown}; declared: {sorted(fields)}",
                code="unknown_dependency",
            )
        for field in fields.values():
            layer = layers.get(field.name)
            if layer is None and not field.optional:
                raise LayerDepsError(
                    f"{owner}: required dependency {field.name!r} is missing",
                    code="missing_dependency",
                )
            if layer is not None and not isinstance(layer, field.layer_type):
                raise LayerDepsError(
                    f"{owner}: dependency {field.name!r} must be a {field.layer_type.__name__}, "
                    f"got a {type(layer).__name__}",
                    code="wrong_dependency_type",
                )
            setattr(self, field.name, layer)

    def __repr__(self) -> str:
        members = ", ".join(
            f"{name}={type(getattr(self, name)).__name__}"
            for name in dependency_fields(type(self))
            if hasattr(self, name)
        )
        return f"{type(self).__name__}({members})"


class NoLayerDeps(LayerDeps):
    """The deps class of a layer that depends on no other layer."""


def dependency_fields(deps_type: type[LayerDeps]) -> Mapping[str, DependencyField]:
    """The declared members of `deps_type`, in declaration order (resolved once, then cached).

    Raises:
        LayerDefinitionError: an annotation cannot be resolved or is not a layer type
            (`invalid_dependency_annotation`).
    """
    fields = deps_type.__dict__.get("_fields_cache")
    if fields is None:
        try:
            fields = _resolve_fields(deps_type)
        except NameError as error:
            raise LayerDefinitionError(
                f"{deps_type.__name__}: cannot resolve a dependency annotation ({error})",
                code="invalid_dependency_annotation",
            ) from error
        deps_type._fields_cache = fields
    return fields


_UNION_ORIGINS: tuple[object, ...] = (typing.Union, UnionType)


def _resolve_fields(deps_type: type[LayerDeps]) -> Mapping[str, DependencyField]:
    # Imported late: `_layers` imports this module to type its deps parameter.
    from ._layers import Layer

    fields: dict[str, DependencyField] = {}
    for name, annotation in typing.get_type_hints(deps_type).items():
        if name.startswith("_") or get_origin(annotation) is ClassVar:
            continue
        fields[name] = _dependency_field(deps_type, name, annotation, Layer)
    return MappingProxyType(fields)


def _dependency_field(
    deps_type: type[LayerDeps],
    name: str,
    annotation: object,
    layer_base: "type[Layer[Any, Any, Any, Any, Any, Any]]",
) -> DependencyField:
    optional = False
    if get_origin(annotation) in _UNION_ORIGINS:
        members = [member for member in get_args(annotation) if member is not NoneType]
        # Only `X | None` is a dependency; any other union is rejected below.
        optional = len(members) == 1
        if optional:
            annotation = members[0]
    layer_type = get_origin(annotation) or annotation
    if isinstance(layer_type, type) and issubclass(layer_type, layer_base):
        return DependencyField(name=name, layer_type=layer_type, optional=optional)
    raise LayerDefinitionError(
        f"{deps_type.__name__}.{name}: a dependency is annotated with a Layer subclass or "
        f"`SomeLayer | None`, got {annotation!r}",
        code="invalid_dependency_annotation",
    )
