"""Failures while a run enters, runs its body or exits: every layer still ends up exited."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from app.compositor import (
    Compositor,
    CompositorSessionSnapshot,
    EmptyLayerConfig,
    LayerProvider,
    LifecycleState,
    NoLayerDeps,
    PlainLayer,
    SnapshotError,
)

from .support import (
    HookFailure,
    Journal,
    RecordingLayer,
    entered,
    exited,
    recording_compositor,
    recording_provider,
    states,
    suspended_snapshot,
)

pytestmark = pytest.mark.asyncio

NEW, SUSPENDED, CLOSED = LifecycleState.NEW, LifecycleState.SUSPENDED, LifecycleState.CLOSED


async def test_a_failing_enter_hook_unwinds_the_layers_entered_before_it(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b", "c", "d")
    run = compositor.create_run(configs={"c": {"fail": ["create"]}})

    with pytest.raises(HookFailure, match=r"^c\.create failed$"):
        async with run:
            journal.append("body")

    error = "[HookFailure: c.create failed]"
    assert journal == [
        *entered("a", "b", "c"),
        f"c.resource_exit{error}",
        *exited("b", "a", error=error),
    ]
    assert states(run.session_snapshot) == {"a": CLOSED, "b": CLOSED, "c": NEW, "d": NEW}


async def test_layers_unwound_after_a_failed_enter_exit_with_their_intents(
    journal: Journal,
) -> None:
    run_box: list[Any] = []
    compositor = recording_compositor(
        journal,
        "a",
        "b",
        "c",
        # While c enters, a is already active: its intent can change.
        before={"c": {"create": lambda: run_box[0].suspend_layer_on_exit("a")}},
    )
    run = compositor.create_run(configs={"c": {"fail": ["create"]}})
    run_box.append(run)

    with pytest.raises(HookFailure):
        async with run:
            pass

    assert journal[-4:] == [
        *exited("b", error="[HookFailure: c.create failed]"),
        *exited("a", step="suspend", error="[HookFailure: c.create failed]"),
    ]
    assert states(run.session_snapshot) == {"a": SUSPENDED, "b": CLOSED, "c": NEW}


async def test_a_never_entered_layer_keeps_its_incoming_state_in_the_snapshot(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b", "c")
    run = compositor.create_run(
        configs={"b": {"fail": ["resume"]}},
        session_snapshot=suspended_snapshot("a", "b", "c", visits=7),
    )

    with pytest.raises(HookFailure):
        async with run:
            pass

    assert run.session_snapshot is not None
    assert run.session_snapshot.model_dump()["layers"] == [
        {"name": "a", "lifecycle_state": CLOSED, "runtime_state": {"visits": 8, "seen": []}},
        {"name": "b", "lifecycle_state": SUSPENDED, "runtime_state": {"visits": 7, "seen": []}},
        {"name": "c", "lifecycle_state": SUSPENDED, "runtime_state": {"visits": 7, "seen": []}},
    ]


async def test_a_failing_resource_context_enter_skips_the_hook_and_unwinds(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b")
    run = compositor.create_run(configs={"b": {"fail": ["resource_enter"]}})

    with pytest.raises(HookFailure, match=r"b\.resource_enter failed"):
        async with run:
            pass

    assert journal == [
        *entered("a"),
        "b.resource_enter",
        *exited("a", error="[HookFailure: b.resource_enter failed]"),
    ]
    assert states(run.session_snapshot) == {"a": CLOSED, "b": NEW}


async def test_an_exit_failure_while_unwinding_is_noted_on_the_original_error(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b")
    run = compositor.create_run(configs={"a": {"fail": ["delete"]}, "b": {"fail": ["create"]}})

    with pytest.raises(HookFailure, match=r"^b\.create failed") as info:
        async with run:
            pass

    assert info.value.__notes__ == ["layer 'a' also failed: HookFailure: a.delete failed"]
    assert states(run.session_snapshot) == {"a": CLOSED, "b": NEW}


async def test_failing_exit_hooks_do_not_stop_the_other_exits(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b", "c")
    run = compositor.create_run(configs={"a": {"fail": ["delete"]}, "b": {"fail": ["delete"]}})

    with pytest.raises(HookFailure, match=r"^b\.delete failed") as info:
        async with run:
            journal.append("body")

    first_error = "[HookFailure: b.delete failed]"
    assert journal == [
        *entered("a", "b", "c"),
        "body",
        *exited("c"),
        *exited("b", error=first_error),
        *exited("a", error=first_error),
    ]
    assert info.value.__notes__ == ["layer 'a' also failed: HookFailure: a.delete failed"]
    assert states(run.session_snapshot) == {"a": CLOSED, "b": CLOSED, "c": CLOSED}


async def test_a_failing_suspend_hook_still_leaves_the_layer_suspended(journal: Journal) -> None:
    run = recording_compositor(journal, "a").create_run(configs={"a": {"fail": ["suspend"]}})

    with pytest.raises(HookFailure):
        async with run:
            run.suspend_on_exit()

    assert states(run.session_snapshot) == {"a": SUSPENDED}


async def test_a_failing_resource_context_exit_is_raised_after_every_exit(
    journal: Journal,
) -> None:
    run = recording_compositor(journal, "a", "b").create_run(
        configs={"b": {"fail": ["resource_exit"]}}
    )

    with pytest.raises(HookFailure, match=r"b\.resource_exit failed"):
        async with run:
            pass

    assert journal[-4:] == [
        *exited("b"),
        *exited("a", error="[HookFailure: b.resource_exit failed]"),
    ]


async def test_an_error_in_the_body_propagates_after_every_layer_exited(journal: Journal) -> None:
    run = recording_compositor(journal, "a", "b").create_run(configs={"a": {"fail": ["delete"]}})
    body_error = ValueError("body failed")

    with pytest.raises(ValueError, match="body failed") as info:
        async with run:
            raise body_error

    assert info.value is body_error
    assert journal[-4:] == [
        *exited("b", error="[ValueError: body failed]"),
        *exited("a", error="[ValueError: body failed]"),
    ]
    assert body_error.__notes__ == ["layer 'a' also failed: HookFailure: a.delete failed"]
    assert states(run.session_snapshot) == {"a": CLOSED, "b": CLOSED}


async def test_a_failing_factory_leaves_every_layer_as_it_came(journal: Journal) -> None:
    def broken(_config: object) -> RecordingLayer:
        raise RuntimeError("no backend")

    compositor = Compositor.from_config(
        {"layers": [{"name": "a", "type": "recording"}, {"name": "b", "type": "recording"}]},
        node_providers={
            "a": recording_provider(journal, "a"),
            "b": LayerProvider.from_factory(layer_type=RecordingLayer, create=broken),
        },
    )
    run = compositor.create_run(session_snapshot=suspended_snapshot("a", "b", visits=3))

    with pytest.raises(RuntimeError, match="no backend"):
        async with run:
            pass

    assert journal == []
    assert run.session_snapshot == CompositorSessionSnapshot.model_validate(
        {
            "layers": [
                {
                    "name": name,
                    "lifecycle_state": "suspended",
                    "runtime_state": {"visits": 3, "seen": []},
                }
                for name in ("a", "b")
            ]
        }
    )


async def test_a_never_built_layer_without_snapshot_is_recorded_new_and_empty() -> None:
    def broken(_config: object) -> RecordingLayer:
        raise RuntimeError("no backend")

    compositor = Compositor.from_config(
        {"layers": [{"name": "a", "type": "recording"}]},
        node_providers={"a": LayerProvider.from_factory(layer_type=RecordingLayer, create=broken)},
    )
    run = compositor.create_run()

    with pytest.raises(RuntimeError):
        async with run:
            pass

    assert run.session_snapshot is not None
    assert run.session_snapshot.model_dump(mode="json")["layers"] == [
        {"name": "a", "lifecycle_state": "new", "runtime_state": {"visits": 0, "seen": []}}
    ]


async def test_the_resource_context_receives_the_exit_hook_error() -> None:
    seen: list[BaseException | None] = []

    class Guarded(PlainLayer[NoLayerDeps]):
        async def on_context_delete(self) -> None:
            raise HookFailure("delete failed")

        @asynccontextmanager
        async def resource_context(self) -> AsyncIterator[None]:
            try:
                yield
            except BaseException as error:
                seen.append(error)
                raise

    compositor = Compositor.from_config(
        {"layers": [{"name": "g", "type": "guarded"}]},
        node_providers={"g": LayerProvider.from_layer_type(Guarded)},
    )

    with pytest.raises(HookFailure) as info:
        async with compositor.enter():
            pass

    assert seen == [info.value]


async def test_a_resource_context_cannot_suppress_the_run_error(journal: Journal) -> None:
    class Swallowing(PlainLayer[NoLayerDeps]):
        @asynccontextmanager
        async def resource_context(self) -> AsyncIterator[None]:
            try:
                yield
            except ValueError:
                journal.append("swallowed")

    compositor = Compositor.from_config(
        {"layers": [{"name": "s", "type": "swallowing"}]},
        node_providers={"s": LayerProvider.from_layer_type(Swallowing)},
    )

    with pytest.raises(ValueError, match="body"):
        async with compositor.enter():
            raise ValueError("body")

    assert journal == ["swallowed"]


async def test_a_runtime_state_that_cannot_be_dumped_leaves_no_snapshot(journal: Journal) -> None:
    class Opaque(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)

        handle: object = None

    class Leaky(PlainLayer[NoLayerDeps, EmptyLayerConfig, Opaque]):
        async def on_context_create(self) -> None:
            self.runtime_state.handle = object()

    compositor = Compositor.from_config(
        {"layers": [{"name": "leaky", "type": "leaky"}]},
        node_providers={"leaky": LayerProvider.from_layer_type(Leaky)},
    )
    run = compositor.create_run()

    with pytest.raises(SnapshotError) as info:
        async with run:
            pass

    assert (info.value.code, info.value.layer) == ("unserializable_runtime_state", "leaky")
    assert info.value.__cause__ is not None
    assert run.session_snapshot is None
    assert run.lifecycle_state("leaky") is CLOSED
