"""Layer classes: types inferred from generic bases or set explicitly, definition errors, deps."""

from collections.abc import Callable
from typing import Any, ClassVar, Generic

import pytest
from pydantic import BaseModel
from typing_extensions import TypeVar

from app.compositor import (
    EmptyLayerConfig,
    EmptyRuntimeState,
    Layer,
    LayerConfig,
    LayerDefinitionError,
    LayerDeps,
    LayerDepsError,
    LayerProvider,
    NoLayerDeps,
    PlainLayer,
)


class AlphaConfig(LayerConfig):
    greeting: str = "hello"


class BetaConfig(LayerConfig):
    count: int = 0


class AlphaState(BaseModel):
    turns: int = 0


class BetaState(BaseModel):
    notes: list[str] = []


class AlphaLayer(Layer[NoLayerDeps, str, str, Callable[..., Any], AlphaConfig, AlphaState]):
    type_id = "alpha"


class BetaLayer(PlainLayer[NoLayerDeps]):
    type_id = "beta"


class AlphaDeps(LayerDeps):
    alpha: AlphaLayer


class PairDeps(LayerDeps):
    alpha: AlphaLayer
    beta: BetaLayer | None
    _private: int
    registry: ClassVar[dict[str, int]] = {}


# A family with its own type parameters, in a different order than Layer's.
S = TypeVar("S", bound=BaseModel)
C = TypeVar("C", bound=LayerConfig)
D = TypeVar("D", bound=LayerDeps)


class ReorderedFamily(Layer[D, str, str, object, C, S], Generic[S, C, D]):
    pass


class HalfBoundFamily(ReorderedFamily[S, BetaConfig, D], Generic[D, S]):
    pass


def test_types_are_inferred_from_the_generic_bases() -> None:
    assert AlphaLayer.deps_type is NoLayerDeps
    assert AlphaLayer.config_type is AlphaConfig
    assert AlphaLayer.runtime_state_type is AlphaState


def test_config_and_runtime_state_default_to_the_empty_models() -> None:
    class Bare(Layer[AlphaDeps, str, str, object]):
        pass

    assert Bare.deps_type is AlphaDeps
    assert Bare.config_type is EmptyLayerConfig
    assert Bare.runtime_state_type is EmptyRuntimeState
    assert BetaLayer.config_type is EmptyLayerConfig


def test_types_are_inferred_through_intermediate_generic_subclasses() -> None:
    class ThroughPlain(PlainLayer[AlphaDeps, AlphaConfig, AlphaState]):
        pass

    class ThroughReordered(ReorderedFamily[BetaState, BetaConfig, AlphaDeps]):
        pass

    class ThroughTwoLevels(HalfBoundFamily[PairDeps, AlphaState]):
        pass

    assert (ThroughPlain.deps_type, ThroughPlain.config_type, ThroughPlain.runtime_state_type) == (
        AlphaDeps,
        AlphaConfig,
        AlphaState,
    )
    assert ThroughReordered.deps_type is AlphaDeps
    assert ThroughReordered.config_type is BetaConfig
    assert ThroughReordered.runtime_state_type is BetaState
    assert ThroughTwoLevels.deps_type is PairDeps
    assert ThroughTwoLevels.config_type is BetaConfig
    assert ThroughTwoLevels.runtime_state_type is AlphaState


def test_mixin_bases_do_not_disturb_type_inference() -> None:
    class Mixin:
        def describe(self) -> str:
            return "mixed"

    class Mixed(Mixin, PlainLayer[AlphaDeps, AlphaConfig]):
        pass

    assert (Mixed.deps_type, Mixed.config_type, Mixed.runtime_state_type) == (
        AlphaDeps,
        AlphaConfig,
        EmptyRuntimeState,
    )


def test_a_subclass_of_a_concrete_layer_inherits_its_types() -> None:
    class Child(AlphaLayer):
        pass

    assert (Child.deps_type, Child.config_type, Child.runtime_state_type) == (
        NoLayerDeps,
        AlphaConfig,
        AlphaState,
    )


def test_explicit_class_attributes_win_over_generic_arguments_and_inheritance() -> None:
    class Explicit(Layer[NoLayerDeps, str, str, object, AlphaConfig, AlphaState]):
        deps_type = AlphaDeps
        config_type = BetaConfig
        runtime_state_type = BetaState

    class Child(Explicit):
        pass

    class Override(AlphaLayer):
        config_type = BetaConfig

    class WithoutGenerics(Layer):  # type: ignore[type-arg]
        deps_type = PairDeps

    assert (Explicit.deps_type, Explicit.config_type, Explicit.runtime_state_type) == (
        AlphaDeps,
        BetaConfig,
        BetaState,
    )
    assert (Child.deps_type, Child.config_type, Child.runtime_state_type) == (
        AlphaDeps,
        BetaConfig,
        BetaState,
    )
    assert (Override.deps_type, Override.config_type) == (NoLayerDeps, BetaConfig)
    assert WithoutGenerics.deps_type is PairDeps


def test_a_layer_without_a_resolvable_deps_type_fails_at_class_creation() -> None:
    with pytest.raises(LayerDefinitionError, match="Orphan: cannot resolve the deps type") as info:

        class Orphan(Layer):  # type: ignore[type-arg]
            pass

    assert info.value.code == "unresolved_deps_type"
    assert isinstance(info.value, TypeError)


def test_a_subclass_of_an_unparametrised_family_has_no_deps_type() -> None:
    with pytest.raises(LayerDefinitionError) as info:

        class Unbound(PlainLayer):  # type: ignore[type-arg]
            pass

    assert info.value.code == "unresolved_deps_type"


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        ((int, EmptyLayerConfig, EmptyRuntimeState), "invalid_deps_type", "LayerDeps subclass"),
        ((NoLayerDeps, AlphaState, EmptyRuntimeState), "invalid_config_type", "LayerConfig"),
        ((NoLayerDeps, EmptyLayerConfig, dict), "invalid_runtime_state_type", "pydantic model"),
    ],
)
def test_wrong_types_in_generic_arguments_fail_at_class_creation(
    arguments: tuple[type, type, type], code: str, message: str
) -> None:
    deps, config, state = arguments

    with pytest.raises(LayerDefinitionError, match=message) as info:

        class Wrong(Layer[deps, str, str, object, config, state]):  # type: ignore[valid-type]
            pass

    assert info.value.code == code


def test_an_explicit_deps_type_that_is_no_layer_deps_fails_at_class_creation() -> None:
    with pytest.raises(LayerDefinitionError, match="got <class 'int'>") as info:

        class Wrong(AlphaLayer):
            deps_type = int  # type: ignore[assignment]

    assert info.value.code == "invalid_deps_type"


def test_a_runtime_state_with_a_required_field_fails_at_class_creation() -> None:
    class NeedsValue(BaseModel):
        value: int

    with pytest.raises(LayerDefinitionError, match=r"NeedsValue requires \['value'\]") as info:

        class Wrong(PlainLayer[NoLayerDeps, EmptyLayerConfig, NeedsValue]):
            pass

    assert info.value.code == "invalid_runtime_state_type"


def test_a_generic_template_cannot_be_instantiated_or_provided() -> None:
    with pytest.raises(
        LayerDefinitionError, match="PlainLayer is a generic layer template"
    ) as info:
        PlainLayer()

    with pytest.raises(LayerDefinitionError, match="ReorderedFamily is a generic layer template"):
        LayerProvider.from_layer_type(ReorderedFamily)

    assert info.value.code == "generic_layer_type"


def test_a_provider_needs_a_layer_class() -> None:
    with pytest.raises(LayerDefinitionError, match="needs a Layer subclass") as info:
        LayerProvider.from_layer_type(AlphaConfig)  # type: ignore[type-var]

    assert info.value.code == "not_a_layer_type"


def test_each_layer_starts_with_its_own_fresh_runtime_state() -> None:
    first, second = AlphaLayer(), AlphaLayer()

    assert first.runtime_state == AlphaState()
    assert first.runtime_state is not second.runtime_state


def test_from_config_builds_a_layer_holding_the_config() -> None:
    config = AlphaConfig(greeting="hi")

    layer = AlphaLayer.from_config(config)

    assert layer.config is config
    assert isinstance(layer, AlphaLayer)


@pytest.mark.asyncio
async def test_the_default_hooks_and_resource_context_do_nothing() -> None:
    layer = AlphaLayer()

    async with layer.resource_context():
        await layer.on_context_create()
        await layer.on_context_resume()
        await layer.on_context_suspend()
        await layer.on_context_delete()

    assert (layer.prefix_prompts, layer.suffix_prompts, layer.user_prompts, layer.tools) == (
        (),
        (),
        (),
        (),
    )
    assert (layer.wrap_prompt("p"), layer.wrap_user_prompt("u"), layer.wrap_tool(len)) == (
        "p",
        "u",
        len,
    )


# -- LayerDeps -------------------------------------------------------------------------------------


def test_deps_bind_required_and_optional_layers() -> None:
    alpha, beta = AlphaLayer(), BetaLayer()

    both = PairDeps(alpha=alpha, beta=beta)
    only_required = PairDeps(alpha=alpha)

    assert (both.alpha, both.beta) == (alpha, beta)
    assert only_required.alpha is alpha
    assert only_required.beta is None
    assert repr(both) == "PairDeps(alpha=AlphaLayer, beta=BetaLayer)"
    assert NoLayerDeps().__class__ is NoLayerDeps


def test_deps_refuse_a_missing_required_layer() -> None:
    with pytest.raises(LayerDepsError, match="required dependency 'alpha' is missing") as info:
        PairDeps(beta=BetaLayer())

    assert info.value.code == "missing_dependency"


def test_deps_refuse_an_unknown_layer() -> None:
    with pytest.raises(LayerDepsError, match=r"unknown dependencies \['gamma'\]") as info:
        AlphaDeps(alpha=AlphaLayer(), gamma=BetaLayer())

    assert info.value.code == "unknown_dependency"


def test_deps_refuse_a_layer_of_the_wrong_type() -> None:
    with pytest.raises(
        LayerDepsError, match="dependency 'alpha' must be a AlphaLayer, got a BetaLayer"
    ) as info:
        PairDeps(alpha=BetaLayer())

    assert info.value.code == "wrong_dependency_type"
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("annotation", [int, AlphaLayer | BetaLayer, AlphaLayer | BetaLayer | None])
def test_a_deps_member_that_is_not_a_layer_fails_at_class_creation(annotation: Any) -> None:
    with pytest.raises(
        LayerDefinitionError, match=r"Bad\.member: a dependency is annotated"
    ) as info:
        type("Bad", (LayerDeps,), {"__annotations__": {"member": annotation}})

    assert info.value.code == "invalid_dependency_annotation"


T = TypeVar("T")


class ObjectLayer(PlainLayer[NoLayerDeps], Generic[T]):
    """A generic layer (over the object it holds) that is still concrete in its layer types."""


class HoldsObjectDeps(LayerDeps):
    holder: ObjectLayer[int]


def test_a_deps_member_may_name_a_parametrised_generic_layer() -> None:
    holder = ObjectLayer[int]()

    assert HoldsObjectDeps(holder=holder).holder is holder


class ChainDeps(LayerDeps):
    previous: "ChainLayer | None"


class ChainLayer(PlainLayer[ChainDeps]):
    """Depends on another layer of its own type: its deps class is resolved on first use."""


def test_deps_naming_a_class_defined_later_resolve_on_first_use() -> None:
    first = ChainLayer()

    second = ChainDeps(previous=first)

    assert second.previous is first
    assert ChainDeps().previous is None


def test_a_deps_annotation_that_never_resolves_fails_on_first_use() -> None:
    class Dangling(LayerDeps):
        missing: "DoesNotExist"  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(LayerDefinitionError, match="Dangling: cannot resolve") as info:
        Dangling()

    assert info.value.code == "invalid_dependency_annotation"
