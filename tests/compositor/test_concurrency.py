"""One compositor entered by many tasks at once gives independent runs."""

import asyncio

import pytest

from app.compositor import CompositorRun, LifecycleState

from .support import Journal, RecordingLayer, recording_compositor

pytestmark = pytest.mark.asyncio


async def test_concurrent_runs_of_one_compositor_are_independent(journal: Journal) -> None:
    compositor = recording_compositor(journal, "a", "b")
    started = asyncio.Event()
    inside = 0

    async def one_run(index: int) -> tuple[CompositorRun, list[str], list[RecordingLayer]]:
        nonlocal inside
        configs = {"a": {"prefix": [f"run-{index}"]}}
        snapshot = None
        if index % 2:
            snapshot = {
                "layers": [
                    {
                        "name": name,
                        "lifecycle_state": "suspended",
                        "runtime_state": {"visits": index},
                    }
                    for name in ("a", "b")
                ]
            }
        async with compositor.enter(configs=configs, session_snapshot=snapshot) as run:
            inside += 1
            if inside == 20:
                started.set()
            await started.wait()  # every run is active at the same time
            if index % 3 == 0:
                run.suspend_on_exit()
            layers = [run.get_layer(name, RecordingLayer) for name in run.names]
            return run, run.prompts, layers

    results = await asyncio.gather(*(one_run(index) for index in range(20)))

    all_layers = [layer for _, _, layers in results for layer in layers]
    assert len({id(layer) for layer in all_layers}) == 40
    for index, (run, prompts, _) in enumerate(results):
        assert prompts == [f"run-{index}"]
        assert run.session_snapshot is not None
        expected_state = LifecycleState.SUSPENDED if index % 3 == 0 else LifecycleState.CLOSED
        expected_visits = index + 1 if index % 2 else 1
        assert [entry.lifecycle_state for entry in run.session_snapshot.layers] == [
            expected_state
        ] * 2
        assert [entry.runtime_state["visits"] for entry in run.session_snapshot.layers] == [
            expected_visits
        ] * 2
    assert compositor.names == ("a", "b")
