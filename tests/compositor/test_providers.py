"""Layer providers: config validation and fresh layers built from the validated config only."""

import pytest

from app.compositor import (
    Compositor,
    LayerConfigError,
    LayerProvider,
    LayerProviderError,
    LifecycleState,
    NoLayerDeps,
    PlainLayer,
)

from .support import Journal, RecordingConfig, RecordingLayer


class GreetingConfig(RecordingConfig):
    greeting: str = "hello"


class GreetingLayer(PlainLayer[NoLayerDeps, GreetingConfig]):
    type_id = "greeting"


class NamelessLayer(PlainLayer[NoLayerDeps]):
    pass


PROVIDER = LayerProvider.from_layer_type(GreetingLayer)


@pytest.mark.parametrize(
    "raw",
    [
        {"greeting": "hi"},
        '{"greeting": "hi"}',
        b'{"greeting": "hi"}',
        GreetingConfig(greeting="hi"),
    ],
    ids=["mapping", "json-str", "json-bytes", "model"],
)
def test_a_config_validates_from_a_mapping_json_or_a_model(raw: object) -> None:
    config = PROVIDER.validate_config(raw)

    assert config == GreetingConfig(greeting="hi")
    assert config is not raw


def test_a_missing_config_means_an_empty_object() -> None:
    assert PROVIDER.validate_config(None) == GreetingConfig()
    assert PROVIDER.validate_config() == GreetingConfig()


def test_a_config_with_an_unknown_field_is_rejected_naming_the_layer() -> None:
    with pytest.raises(LayerConfigError) as info:
        PROVIDER.validate_config({"greting": "hi"}, layer="welcome")

    assert info.value.code == "invalid_layer_config"
    assert info.value.layer == "welcome"
    assert str(info.value).startswith("layer 'welcome' (type 'greeting'): invalid config: greting:")


def test_a_model_mutated_after_construction_is_validated_again() -> None:
    config = GreetingConfig()
    config.greeting = 42  # type: ignore[assignment]

    with pytest.raises(LayerConfigError, match="layer type 'greeting': invalid config: greeting"):
        PROVIDER.validate_config(config)


def test_a_provider_exposes_its_layer_type_type_id_and_config_type() -> None:
    assert PROVIDER.layer_type is GreetingLayer
    assert PROVIDER.type_id == "greeting"
    assert PROVIDER.config_type is GreetingConfig
    assert repr(PROVIDER) == "LayerProvider(GreetingLayer, type_id='greeting')"


def test_create_layer_builds_a_fresh_layer_holding_the_validated_config() -> None:
    first = PROVIDER.create_layer({"greeting": "hi"})
    second = PROVIDER.create_layer({"greeting": "hi"})

    assert first is not second
    assert first.config == GreetingConfig(greeting="hi")


def test_a_factory_receives_only_the_validated_config(journal: Journal) -> None:
    received: list[tuple[object, ...]] = []

    def create(*args: object) -> RecordingLayer:
        received.append(args)
        return RecordingLayer("made", journal)

    provider = LayerProvider.from_factory(layer_type=RecordingLayer, create=create)

    layer = provider.create_layer('{"prefix": ["p"]}')

    assert received == [(RecordingConfig(prefix=["p"]),)]
    assert layer.config == RecordingConfig(prefix=["p"])


def test_a_factory_that_hands_back_a_reused_instance_is_refused(journal: Journal) -> None:
    shared = RecordingLayer("shared", journal)
    provider = LayerProvider.from_factory(layer_type=RecordingLayer, create=lambda _: shared)
    provider.create_layer()

    with pytest.raises(LayerProviderError, match="already used") as info:
        provider.create_layer(layer="again")

    assert info.value.code == "layer_instance_reused"
    assert info.value.layer == "again"


@pytest.mark.asyncio
async def test_a_reused_instance_fails_the_second_run_before_any_hook(journal: Journal) -> None:
    shared = RecordingLayer("shared", journal)
    provider = LayerProvider.from_factory(layer_type=RecordingLayer, create=lambda _: shared)
    compositor = Compositor.from_config(
        {"layers": [{"name": "shared", "type": "recording"}]}, providers=[provider]
    )
    async with compositor.enter():
        pass
    journal.clear()
    run = compositor.create_run()

    with pytest.raises(LayerProviderError) as info:
        async with run:
            pass

    assert journal == []
    assert info.value.layer == "shared"
    assert run.session_snapshot is not None
    assert run.session_snapshot.layers[0].lifecycle_state is LifecycleState.NEW


def test_a_factory_that_hands_back_another_type_is_refused() -> None:
    provider = LayerProvider.from_factory(
        layer_type=GreetingLayer,
        create=lambda _: NamelessLayer(),  # type: ignore[arg-type, return-value]
    )

    with pytest.raises(LayerProviderError, match="returned NamelessLayer, not a GreetingLayer"):
        provider.create_layer(layer="welcome")


def test_a_provider_of_a_layer_without_type_id_is_described_by_its_class() -> None:
    provider = LayerProvider.from_layer_type(NamelessLayer)

    with pytest.raises(LayerConfigError, match=r"^layer NamelessLayer: invalid config"):
        provider.validate_config({"x": 1})

    assert provider.type_id is None
