"""Entering and exiting a run: order, resource contexts, exit intents, the run object."""

import pytest

from app.compositor import (
    Compositor,
    ExitIntent,
    LayerLifecycleError,
    LayerLookupError,
    LifecycleState,
)

from .support import (
    DependentRecordingLayer,
    Journal,
    UpstreamDeps,
    entered,
    exited,
    recording_compositor,
    recording_provider,
    states,
    suspended_snapshot,
)

pytestmark = pytest.mark.asyncio

NEW, ACTIVE, SUSPENDED, CLOSED = (
    LifecycleState.NEW,
    LifecycleState.ACTIVE,
    LifecycleState.SUSPENDED,
    LifecycleState.CLOSED,
)


async def test_layers_enter_in_order_and_exit_in_reverse_inside_their_resource_contexts(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b", "c")

    async with compositor.enter() as run:
        journal.append("body")
        assert [run.lifecycle_state(name) for name in run.names] == [ACTIVE] * 3

    assert journal == [*entered("a", "b", "c"), "body", *exited("c", "b", "a")]
    assert states(run.session_snapshot) == {"a": CLOSED, "b": CLOSED, "c": CLOSED}


async def test_the_exit_intent_defaults_to_delete(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b")

    async with compositor.enter(session_snapshot=suspended_snapshot("a", "b")) as run:
        assert [run.exit_intent(name) for name in run.names] == [ExitIntent.DELETE] * 2

    assert journal[-4:] == exited("b", "a")
    assert states(run.session_snapshot) == {"a": CLOSED, "b": CLOSED}


async def test_suspend_on_exit_suspends_every_layer(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b")

    async with compositor.enter() as run:
        run.suspend_on_exit()

    assert journal[-4:] == exited("b", "a", step="suspend")
    assert states(run.session_snapshot) == {"a": SUSPENDED, "b": SUSPENDED}


async def test_per_layer_intents_override_the_whole_run_intent(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b", "c")

    async with compositor.enter() as run:
        run.suspend_on_exit()
        run.delete_layer_on_exit("b")

    assert journal[-6:] == [
        *exited("c", step="suspend"),
        *exited("b"),
        *exited("a", step="suspend"),
    ]
    assert states(run.session_snapshot) == {"a": SUSPENDED, "b": CLOSED, "c": SUSPENDED}


async def test_delete_on_exit_and_suspend_layer_on_exit_change_intents_again(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b")

    async with compositor.enter() as run:
        run.suspend_on_exit()
        run.delete_on_exit()
        run.suspend_layer_on_exit("a")
        assert (run.exit_intent("a"), run.exit_intent("b")) == (
            ExitIntent.SUSPEND,
            ExitIntent.DELETE,
        )

    assert states(run.session_snapshot) == {"a": SUSPENDED, "b": CLOSED}


async def test_every_enter_resets_the_exit_intent_to_delete(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a")
    async with compositor.enter() as first:
        first.suspend_on_exit()

    async with compositor.enter(session_snapshot=first.session_snapshot) as second:
        assert second.exit_intent("a") is ExitIntent.DELETE

    assert states(second.session_snapshot) == {"a": CLOSED}


async def test_exit_intents_cannot_change_before_the_run_is_entered(journal: Journal) -> None:
    run = recording_compositor(journal, "a", "b").create_run()

    with pytest.raises(LayerLifecycleError) as whole:
        run.suspend_on_exit()
    with pytest.raises(LayerLifecycleError) as one:
        run.delete_layer_on_exit("b")

    assert (whole.value.code, whole.value.layer) == ("layer_not_active", "a")
    assert (one.value.code, one.value.layer) == ("layer_not_active", "b")
    assert "layer 'b' is new, not active" in str(one.value)
    assert journal == []


async def test_exit_intents_cannot_change_after_the_run_exited(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a")
    async with compositor.enter() as run:
        pass

    with pytest.raises(LayerLifecycleError, match="layer 'a' is closed, not active"):
        run.suspend_layer_on_exit("a")
    with pytest.raises(LayerLifecycleError, match="layer 'a' is closed, not active"):
        run.delete_on_exit()


async def test_an_exit_intent_for_an_unknown_layer_names_it(journal: Journal) -> None:
    async with recording_compositor(journal, "a").enter() as run:
        with pytest.raises(LayerLookupError) as info:
            run.suspend_layer_on_exit("ghost")

    assert (info.value.code, info.value.layer) == ("unknown_layer", "ghost")


async def test_deps_are_bound_to_the_earlier_layers_of_the_same_run(journal: Journal) -> None:
    compositor = Compositor.from_config(
        {
            "layers": [
                {"name": "a", "type": "recording"},
                {"name": "b", "type": "dependent_recording", "deps": {"upstream": "a"}},
            ]
        },
        node_providers={
            "a": recording_provider(journal, "a"),
            "b": recording_provider(journal, "b", layer_type=DependentRecordingLayer),
        },
    )

    async with compositor.enter() as run:
        dependent = run.get_layer("b", DependentRecordingLayer)
        deps = dependent.deps
        assert isinstance(deps, UpstreamDeps)
        assert deps.upstream is run.get_layer("a")
        assert list(run.layers) == ["a", "b"]
        assert run.layers["b"] is dependent


async def test_get_layer_checks_the_requested_type(journal: Journal) -> None:
    async with recording_compositor(journal, "a").enter() as run:
        with pytest.raises(LayerLookupError) as info:
            run.get_layer("a", DependentRecordingLayer)

    assert (info.value.code, info.value.layer) == ("wrong_layer_type", "a")
    assert "layer 'a' is a RecordingLayer, not a DependentRecordingLayer" in str(info.value)


async def test_layers_do_not_exist_before_the_run_is_entered(journal: Journal) -> None:
    run = recording_compositor(journal, "a").create_run()

    with pytest.raises(LayerLifecycleError) as info:
        run.get_layer("a")
    with pytest.raises(LayerLifecycleError):
        _ = run.layers

    assert (info.value.code, info.value.layer) == ("run_not_entered", "a")
    assert run.session_snapshot is None
    assert run.lifecycle_state("a") is NEW


async def test_a_run_can_be_entered_only_once(journal: Journal) -> None:
    run = recording_compositor(journal, "a").create_run()
    async with run:
        pass

    with pytest.raises(LayerLifecycleError, match="entered before") as info:
        async with run:
            pass

    assert info.value.code == "run_already_entered"
    assert journal == [*entered("a"), *exited("a")]


async def test_a_run_that_is_not_active_cannot_exit(journal: Journal) -> None:
    run = recording_compositor(journal, "a").create_run()

    with pytest.raises(LayerLifecycleError, match="cannot exit while it is pending") as info:
        await run.__aexit__(None, None, None)

    assert info.value.code == "run_not_active"


async def test_an_abandoned_run_runs_no_exit_hook_and_only_closes_resources(
    journal: Journal,
) -> None:
    compositor = recording_compositor(journal, "a", "b")

    async with compositor.enter(session_snapshot=suspended_snapshot("a", "b")) as run:
        run.delete_on_exit()
        run.abandon_on_exit()

    assert journal[-2:] == ["b.resource_exit", "a.resource_exit"]
    assert not any(line.endswith((".delete", ".suspend")) for line in journal)
    assert run.session_snapshot is None


async def test_abandoning_is_only_possible_while_the_run_is_active(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a")
    run = compositor.create_run()

    with pytest.raises(LayerLifecycleError) as raised:
        run.abandon_on_exit()
    assert raised.value.code == "run_not_active"


async def test_a_new_entry_without_runtime_state_starts_fresh(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b")
    snapshot = suspended_snapshot("a", "b", visits=3)
    snapshot["layers"][1] = {"name": "b", "lifecycle_state": "new", "runtime_state": {}}

    async with compositor.enter(session_snapshot=snapshot) as run:
        run.suspend_on_exit()

    assert journal[:4] == ["a.resource_enter", "a.resume(visits=3)", "b.resource_enter", "b.create"]
    assert run.session_snapshot is not None
    visits = {e.name: e.runtime_state["visits"] for e in run.session_snapshot.layers}
    assert visits == {"a": 4, "b": 1}
