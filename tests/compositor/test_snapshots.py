"""Session snapshots: what a run records, how it resumes, and what is refused before any hook."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from app.compositor import (
    Compositor,
    CompositorSessionSnapshot,
    EmptyLayerConfig,
    LayerConfigError,
    LayerProvider,
    LayerSessionSnapshot,
    LifecycleState,
    NoLayerDeps,
    PlainLayer,
    SnapshotError,
)

from .support import Journal, entered, recording_compositor


def snapshot(*entries: tuple[str, str, dict[str, Any]], version: int = 1) -> dict[str, Any]:
    return {
        "schema_version": version,
        "layers": [
            {"name": name, "lifecycle_state": state, "runtime_state": runtime}
            for name, state, runtime in entries
        ],
    }


def suspended(*names: str) -> dict[str, Any]:
    return snapshot(*((name, "suspended", {"visits": 1}) for name in names))


@pytest.mark.asyncio
async def test_a_snapshot_has_one_entry_per_layer_in_order(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b", "c")

    async with compositor.enter() as run:
        run.suspend_on_exit()

    assert run.session_snapshot == CompositorSessionSnapshot(
        schema_version=1,
        layers=[
            LayerSessionSnapshot(
                name=name,
                lifecycle_state=LifecycleState.SUSPENDED,
                runtime_state={"visits": 1, "seen": []},
            )
            for name in ("a", "b", "c")
        ],
    )


@pytest.mark.asyncio
async def test_resuming_from_suspended_calls_the_resume_hook_with_the_hydrated_state(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b")
    async with compositor.enter() as first:
        first.suspend_on_exit()
    journal.clear()

    async with compositor.enter(session_snapshot=first.session_snapshot) as second:
        second.suspend_on_exit()

    assert journal[:4] == [
        "a.resource_enter",
        "a.resume(visits=1)",
        "b.resource_enter",
        "b.resume(visits=1)",
    ]
    assert second.session_snapshot is not None
    assert [entry.runtime_state["visits"] for entry in second.session_snapshot.layers] == [2, 2]


@pytest.mark.asyncio
async def test_new_entries_of_a_snapshot_enter_through_the_create_hook(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b")
    mixed = snapshot(("a", "new", {}), ("b", "suspended", {"visits": 4}))

    async with compositor.enter(session_snapshot=mixed):
        pass

    assert journal[:4] == [*entered("a"), "b.resource_enter", "b.resume(visits=4)"]


@pytest.mark.asyncio
@pytest.mark.parametrize("form", ["model", "mapping", "json-str", "json-bytes"])
async def test_a_snapshot_is_accepted_as_a_model_a_mapping_or_json(
    journal: Journal, form: str
) -> None:
    model = CompositorSessionSnapshot.model_validate(suspended("a"))
    given: object = {
        "model": model,
        "mapping": model.model_dump(mode="json"),
        "json-str": model.model_dump_json(),
        "json-bytes": model.model_dump_json().encode(),
    }[form]

    async with recording_compositor(journal, "a").enter(session_snapshot=given):
        pass

    assert journal[1] == "a.resume(visits=1)"


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class RichState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stamp: datetime | None = Field(default=None, strict=True)
    colour: Colour = Colour.RED
    pair: tuple[int, str] = (0, "")
    nested: dict[str, list[float]] = Field(default_factory=dict)
    counter: int = Field(default=0, alias="counterValue")


class RichLayer(PlainLayer[NoLayerDeps, EmptyLayerConfig, RichState]):
    async def on_context_create(self) -> None:
        self.runtime_state = RichState.model_validate(
            {
                "stamp": datetime(2026, 11, 22, 8, 30, tzinfo=UTC),
                "colour": Colour.BLUE,
                "pair": (7, "seven"),
                "nested": {"k": [0.5, 1.25]},
                "counterValue": 3,
            }
        )


@pytest.mark.asyncio
async def test_a_snapshot_round_trips_through_json_without_loss() -> None:
    compositor = Compositor.from_config(
        {"layers": [{"name": "rich", "type": "rich"}]},
        node_providers={"rich": LayerProvider.from_layer_type(RichLayer)},
    )
    async with compositor.enter() as first:
        first.suspend_on_exit()
        created = first.get_layer("rich", RichLayer).runtime_state
    assert first.session_snapshot is not None

    stored = first.session_snapshot.model_dump_json()
    assert CompositorSessionSnapshot.model_validate_json(stored) == first.session_snapshot

    async with compositor.enter(session_snapshot=stored) as second:
        assert second.get_layer("rich", RichLayer).runtime_state == created
        second.suspend_on_exit()
    assert second.session_snapshot == first.session_snapshot


# -- refused before any hook runs ------------------------------------------------------------------


def refused(journal: Journal, session_snapshot: object, *names: str) -> SnapshotError:
    """Assert that both `validate` and `enter` refuse the snapshot and nothing ran."""
    compositor = recording_compositor(journal, *(names or ("a", "b")))
    with pytest.raises(SnapshotError) as validated:
        compositor.validate(session_snapshot=session_snapshot)
    with pytest.raises(SnapshotError) as entered_error:
        compositor.enter(session_snapshot=session_snapshot)
    assert (validated.value.code, validated.value.layer) == (
        entered_error.value.code,
        entered_error.value.layer,
    )
    assert journal == []
    return entered_error.value


def test_a_snapshot_with_another_schema_version_is_refused(journal: Journal) -> None:
    error = refused(journal, {**suspended("a", "b"), "schema_version": 2})

    assert error.code == "snapshot_version_mismatch"
    assert "schema_version 2 is not supported" in str(error)


@pytest.mark.parametrize(
    ("names", "culprit"),
    [(("a",), "b"), (("a", "b", "c"), "c"), (("b", "a"), "a"), (("a", "x"), "b")],
    ids=["fewer", "more", "reordered", "renamed"],
)
def test_a_snapshot_whose_names_differ_from_the_composition_is_refused(
    journal: Journal, names: tuple[str, ...], culprit: str
) -> None:
    error = refused(journal, suspended(*names))

    assert (error.code, error.layer) == ("snapshot_layers_mismatch", culprit)
    assert f"expected ['a', 'b'], got {list(names)}" in str(error)


@pytest.mark.parametrize(
    ("state", "code"),
    [("closed", "snapshot_layer_closed"), ("active", "snapshot_layer_active")],
)
def test_a_snapshot_with_a_closed_or_active_layer_is_refused(
    journal: Journal, state: str, code: str
) -> None:
    error = refused(journal, snapshot(("a", "suspended", {}), ("b", state, {})))

    assert (error.code, error.layer) == (code, "b")
    assert f"layer 'b' is {state} in the session snapshot" in str(error)


@pytest.mark.parametrize(
    "runtime_state",
    [{"visits": "many"}, {"unknown": 1}],
    ids=["wrong-type", "unknown-field"],
)
def test_a_snapshot_whose_runtime_state_fails_its_schema_is_refused(
    journal: Journal, runtime_state: dict[str, Any]
) -> None:
    error = refused(journal, snapshot(("a", "suspended", {}), ("b", "suspended", runtime_state)))

    assert (error.code, error.layer) == ("invalid_runtime_state", "b")
    assert "layer 'b': the runtime state does not match RecordingState" in str(error)


@pytest.mark.parametrize(
    "raw",
    ["{not json", {"layers": [{"name": "a", "lifecycle_state": "asleep"}]}, {"extra": 1}],
    ids=["bad-json", "bad-state", "unknown-field"],
)
def test_a_snapshot_that_is_not_a_snapshot_is_refused(journal: Journal, raw: object) -> None:
    error = refused(journal, raw)

    assert error.code == "invalid_snapshot"


def test_a_snapshot_model_mutated_after_construction_is_validated_again(journal: Journal) -> None:
    model = CompositorSessionSnapshot.model_validate(suspended("a", "b"))
    model.layers[1].lifecycle_state = "asleep"  # type: ignore[assignment]

    assert refused(journal, model).code == "invalid_snapshot"


def test_config_keys_that_name_no_layer_are_refused_before_any_hook(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a")

    with pytest.raises(LayerConfigError) as info:
        compositor.enter(configs={"ghost": {}}, session_snapshot=suspended("a"))

    assert (info.value.code, info.value.layer) == ("unknown_config_key", "ghost")
    assert journal == []


def test_configs_are_checked_before_the_snapshot(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a")

    with pytest.raises(LayerConfigError) as info:
        compositor.create_run(configs={"a": {"nope": 1}}, session_snapshot={"garbage": True})

    assert info.value.code == "invalid_layer_config"
