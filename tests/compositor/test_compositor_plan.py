"""Building a compositor from a composition: what it refuses and what it exposes."""

from typing import Any

import pytest

from app.compositor import (
    Compositor,
    CompositorConfig,
    CompositorConfigError,
    LayerConfigError,
    LayerDeps,
    LayerLookupError,
    LayerNodeConfig,
    LayerProvider,
    PlainLayer,
)

from .support import (
    DependentRecordingLayer,
    Journal,
    RecordingConfig,
    RecordingLayer,
    RecordingState,
)


class OptionalDeps(LayerDeps):
    upstream: RecordingLayer | None


class OptionalDependentLayer(PlainLayer[OptionalDeps]):
    type_id = "optional_dependent"


def providers(journal: Journal) -> list[LayerProvider[Any]]:
    def factory(layer_type: type[RecordingLayer]) -> LayerProvider[RecordingLayer]:
        return LayerProvider.from_factory(
            layer_type=layer_type, create=lambda _: layer_type("layer", journal)
        )

    return [
        factory(RecordingLayer),
        factory(DependentRecordingLayer),
        LayerProvider.from_layer_type(OptionalDependentLayer),
    ]


def build(journal: Journal, *layers: dict[str, Any], **options: Any) -> Compositor:
    return Compositor.from_config({"layers": list(layers)}, providers=providers(journal), **options)


def refused(journal: Journal, *layers: dict[str, Any], **options: Any) -> CompositorConfigError:
    with pytest.raises(CompositorConfigError) as info:
        build(journal, *layers, **options)
    return info.value


def test_a_composition_builds_from_a_model_a_mapping_or_json(journal: Journal) -> None:
    spec = {"layers": [{"name": "a", "type": "recording", "metadata": {"team": ["x"]}}]}
    model = CompositorConfig.model_validate(spec)

    for config in (spec, model, model.model_dump_json(), model.model_dump_json().encode()):
        compositor = Compositor.from_config(config, providers=providers(journal))

        assert compositor.names == ("a",)
        assert compositor.to_config() == model


def test_a_compositor_exposes_names_types_providers_and_node_specs(journal: Journal) -> None:
    compositor = build(
        journal,
        {"name": "first", "type": "recording"},
        {"name": "second", "type": "dependent_recording", "deps": {"upstream": "first"}},
    )

    assert compositor.names == ("first", "second")
    assert compositor.layer_type("second") is DependentRecordingLayer
    assert compositor.layer_type("first").runtime_state_type is RecordingState
    assert compositor.provider("first").type_id == "recording"
    assert compositor.node_config("second") == LayerNodeConfig(
        name="second", type="dependent_recording", deps={"upstream": "first"}
    )


def test_node_specs_handed_out_are_copies(journal: Journal) -> None:
    compositor = build(journal, {"name": "a", "type": "recording", "metadata": {"k": [1]}})

    compositor.node_config("a").metadata["k"] = "changed"
    compositor.to_config().layers.clear()

    assert compositor.node_config("a").metadata == {"k": [1]}
    assert compositor.names == ("a",)


def test_looking_up_an_unknown_layer_names_it(journal: Journal) -> None:
    compositor = build(journal, {"name": "a", "type": "recording"})

    with pytest.raises(
        LayerLookupError, match=r"layer 'zzz' is not part of the composition"
    ) as info:
        compositor.layer_type("zzz")

    assert (info.value.code, info.value.layer) == ("unknown_layer", "zzz")


def test_an_empty_layer_name_is_refused(journal: Journal) -> None:
    error = refused(journal, {"name": "a", "type": "recording"}, {"name": "", "type": "recording"})

    assert error.code == "empty_layer_name"
    assert "position 1" in str(error)


def test_a_duplicate_layer_name_is_refused(journal: Journal) -> None:
    error = refused(journal, {"name": "a", "type": "recording"}, {"name": "a", "type": "recording"})

    assert (error.code, error.layer) == ("duplicate_layer_name", "a")
    assert "layer 'a'" in str(error)


def test_an_unknown_type_id_is_refused(journal: Journal) -> None:
    error = refused(journal, {"name": "a", "type": "nope"})

    assert (error.code, error.layer) == ("unknown_layer_type", "a")
    assert "type 'nope' is not registered" in str(error)


def test_two_providers_with_the_same_type_id_are_refused(journal: Journal) -> None:
    duplicate = LayerProvider.from_factory(
        layer_type=RecordingLayer, create=lambda _: RecordingLayer("x", journal)
    )

    with pytest.raises(CompositorConfigError) as info:
        Compositor.from_config({"layers": []}, providers=[*providers(journal), duplicate])

    assert info.value.code == "duplicate_provider_type"
    assert "'recording'" in str(info.value)


def test_a_provider_without_type_id_cannot_be_registered_by_type() -> None:
    class Anonymous(PlainLayer[OptionalDeps]):
        pass

    with pytest.raises(CompositorConfigError, match="Anonymous has no type_id") as info:
        Compositor.from_config({"layers": []}, providers=[LayerProvider.from_layer_type(Anonymous)])

    assert info.value.code == "missing_type_id"


def test_a_node_provider_for_an_unknown_layer_is_refused(journal: Journal) -> None:
    extra = {"ghost": providers(journal)[0]}

    error = refused(journal, {"name": "a", "type": "recording"}, node_providers=extra)

    assert (error.code, error.layer) == ("unknown_node_provider", "ghost")


def test_a_node_provider_overrides_the_type_lookup_for_its_node(journal: Journal) -> None:
    override = LayerProvider.from_layer_type(OptionalDependentLayer)

    compositor = build(journal, {"name": "a", "type": "recording"}, node_providers={"a": override})

    assert compositor.provider("a") is override


def test_an_unknown_dependency_field_is_refused(journal: Journal) -> None:
    error = refused(
        journal,
        {"name": "a", "type": "recording"},
        {"name": "b", "type": "dependent_recording", "deps": {"upstream": "a", "extra": "a"}},
    )

    assert (error.code, error.layer) == ("unknown_dependency_field", "b")
    assert "UpstreamDeps has no dependency field 'extra'" in str(error)


def test_a_dependency_on_a_missing_layer_is_refused(journal: Journal) -> None:
    error = refused(
        journal, {"name": "b", "type": "dependent_recording", "deps": {"upstream": "ghost"}}
    )

    assert (error.code, error.layer) == ("dependency_not_found", "b")
    assert "'ghost', which is not a layer" in str(error)


@pytest.mark.parametrize("target", ["b", "c"])
def test_a_dependency_on_the_same_or_a_later_layer_is_refused(
    journal: Journal, target: str
) -> None:
    error = refused(
        journal,
        {"name": "a", "type": "recording"},
        {"name": "b", "type": "dependent_recording", "deps": {"upstream": target}},
        {"name": "c", "type": "recording"},
    )

    assert (error.code, error.layer) == ("dependency_order", "b")
    assert "must point to earlier layers" in str(error)


def test_a_dependency_on_a_layer_of_the_wrong_class_is_refused(journal: Journal) -> None:
    error = refused(
        journal,
        {"name": "a", "type": "optional_dependent"},
        {"name": "b", "type": "dependent_recording", "deps": {"upstream": "a"}},
    )

    assert (error.code, error.layer) == ("wrong_dependency_type", "b")
    assert "needs a RecordingLayer, but 'a' is a OptionalDependentLayer" in str(error)


def test_an_unwired_required_dependency_is_refused(journal: Journal) -> None:
    error = refused(journal, {"name": "b", "type": "dependent_recording"})

    assert (error.code, error.layer) == ("missing_dependency", "b")


def test_an_unwired_optional_dependency_is_allowed(journal: Journal) -> None:
    compositor = build(journal, {"name": "b", "type": "optional_dependent"})

    assert compositor.names == ("b",)


def test_a_composition_that_does_not_validate_is_refused(journal: Journal) -> None:
    error = refused(journal, {"name": "a", "type": "recording", "config": {}})

    assert error.code == "invalid_compositor_config"
    assert "layers.0.config: Extra inputs are not permitted" in str(error)


def test_an_unsupported_composition_schema_version_is_refused(journal: Journal) -> None:
    with pytest.raises(CompositorConfigError, match="schema_version 2 is not supported") as info:
        Compositor.from_config({"schema_version": 2, "layers": []}, providers=providers(journal))

    assert info.value.code == "config_version_mismatch"


def test_validate_returns_the_validated_configs_in_layer_order(journal: Journal) -> None:
    compositor = build(
        journal, {"name": "a", "type": "recording"}, {"name": "b", "type": "recording"}
    )

    configs = compositor.validate(configs={"b": {"prefix": ["x"]}})

    assert list(configs) == ["a", "b"]
    assert configs["a"] == RecordingConfig()
    assert configs["b"] == RecordingConfig(prefix=["x"])
    assert journal == []


def test_validate_refuses_config_keys_that_name_no_layer(journal: Journal) -> None:
    compositor = build(journal, {"name": "a", "type": "recording"})

    with pytest.raises(LayerConfigError) as info:
        compositor.validate(configs={"a": {}, "ghost": {}})

    assert (info.value.code, info.value.layer) == ("unknown_config_key", "ghost")
    assert "['ghost']" in str(info.value)


def test_validate_refuses_an_invalid_config_naming_its_layer(journal: Journal) -> None:
    compositor = build(journal, {"name": "a", "type": "recording"})

    with pytest.raises(LayerConfigError) as info:
        compositor.validate(configs={"a": {"fail": ["explode"]}})

    assert (info.value.code, info.value.layer) == ("invalid_layer_config", "a")
