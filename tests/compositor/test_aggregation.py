"""Aggregating prompts, user prompts and tools across the layers of an active run."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from app.compositor import (
    Compositor,
    Layer,
    LayerLifecycleError,
    LayerProvider,
    NoLayerDeps,
    PlainLayer,
)

from .support import Journal, recording_compositor, recording_provider

pytestmark = pytest.mark.asyncio

CONFIGS = {
    "a": {"prefix": ["a1", "a2"], "suffix": ["a-end1", "a-end2"], "user": ["ua"], "tools": ["ta"]},
    "b": {"prefix": ["b1"], "suffix": ["b-end"], "user": ["ub1", "ub2"], "tools": ["tb1", "tb2"]},
    "c": {"prefix": ["c1"], "suffix": ["c-end"], "user": ["uc"]},
}


async def test_prefix_prompts_come_in_order_and_suffix_prompts_in_reverse(
    journal: Journal,
) -> None:
    async with recording_compositor(journal, "a", "b", "c").enter(configs=CONFIGS) as run:
        prompts = run.prompts

    assert prompts == ["a1", "a2", "b1", "c1", "c-end", "b-end", "a-end1", "a-end2"]


async def test_user_prompts_and_tools_come_in_layer_order(journal: Journal) -> None:
    async with recording_compositor(journal, "a", "b", "c").enter(configs=CONFIGS) as run:
        user_prompts = run.user_prompts
        tools = run.tools

    assert user_prompts == ["ua", "ub1", "ub2", "uc"]
    assert [tool() for tool in tools] == ["ta", "tb1", "tb2"]


async def test_the_compositor_transformers_post_process_each_aggregate(journal: Journal) -> None:
    compositor = recording_compositor(
        journal,
        "a",
        "b",
        "c",
        prompt_transformer=lambda items: ["\n".join(items)],
        user_prompt_transformer=lambda items: [item.upper() for item in items],
        tool_transformer=lambda items: tuple(tool.__name__ for tool in items),
    )

    async with compositor.enter(configs=CONFIGS) as run:
        assert run.prompts == ["a1\na2\nb1\nc1\nc-end\nb-end\na-end1\na-end2"]
        assert run.user_prompts == ["UA", "UB1", "UB2", "UC"]
        assert run.tools == ["ta", "tb1", "tb2"]


@dataclass(frozen=True)
class Tagged:
    kind: str
    item: Any


class TaggingLayer(Layer[NoLayerDeps, int, int, int]):
    """A family whose items are ints, tagged by its wrap hooks."""

    @property
    def prefix_prompts(self) -> Sequence[int]:
        return [1]

    @property
    def suffix_prompts(self) -> Sequence[int]:
        return [2]

    @property
    def user_prompts(self) -> Sequence[int]:
        return [3]

    @property
    def tools(self) -> Sequence[int]:
        return [4]

    def wrap_prompt(self, prompt: int) -> Tagged:
        return Tagged("number-prompt", prompt)

    def wrap_user_prompt(self, user_prompt: int) -> Tagged:
        return Tagged("number-user", user_prompt)

    def wrap_tool(self, tool: int) -> Tagged:
        return Tagged("number-tool", tool)


async def test_each_item_goes_through_its_own_family_wrap_hooks(journal: Journal) -> None:
    compositor = Compositor.from_config(
        {"layers": [{"name": "plain", "type": "recording"}, {"name": "n", "type": "numbers"}]},
        node_providers={
            "plain": recording_provider(journal, "plain"),
            "n": LayerProvider.from_layer_type(TaggingLayer),
        },
    )

    async with compositor.enter(configs={"plain": {"prefix": ["p"], "suffix": ["s"]}}) as run:
        assert run.prompts == ["p", Tagged("number-prompt", 1), Tagged("number-prompt", 2), "s"]
        assert run.user_prompts == [Tagged("number-user", 3)]
        assert run.tools == [Tagged("number-tool", 4)]


def lookup() -> str:
    """Look something up."""
    return "found"


class PlainTools(PlainLayer[NoLayerDeps]):
    @property
    def tools(self) -> Sequence[Callable[..., Any]]:
        return [lookup]

    @property
    def user_prompts(self) -> Sequence[str]:
        return ["hello"]

    @property
    def prefix_prompts(self) -> Sequence[str]:
        return ["be brief"]


async def test_plain_layers_hand_strings_and_callables_through_unchanged() -> None:
    compositor = Compositor.from_config(
        {"layers": [{"name": "tools", "type": "plain_tools"}]},
        node_providers={"tools": LayerProvider.from_layer_type(PlainTools)},
    )

    async with compositor.enter() as run:
        assert (run.prompts, run.user_prompts, run.tools) == (["be brief"], ["hello"], [lookup])


async def test_aggregates_are_only_available_while_the_run_is_active(journal: Journal) -> None:
    run = recording_compositor(journal, "a").create_run()

    with pytest.raises(LayerLifecycleError, match="only available while the run is active") as info:
        _ = run.prompts
    async with run:
        pass
    with pytest.raises(LayerLifecycleError):
        _ = run.tools
    with pytest.raises(LayerLifecycleError):
        _ = run.user_prompts

    assert (info.value.code, info.value.layer) == ("run_not_active", None)
