"""`PlainLayer`: the framework-neutral layer family.

Prompts and user prompts are plain `str`; tools are plain callables (a function's name, signature
and docstring describe the tool). Plain items need no tagging: `wrap_*` hands them back unchanged,
so a run made only of plain layers aggregates `list[str]` prompts and `list[Callable]` tools, and a
transformer can tell plain items from other families' by their Python type.
"""

from collections.abc import Callable
from typing import Any, Generic, TypeAlias

from ._layers import ConfigT, DepsT, Layer, RuntimeStateT

PlainTool: TypeAlias = Callable[..., Any]
"""A plain tool: any callable."""


class PlainLayer(
    Layer[DepsT, str, str, PlainTool, ConfigT, RuntimeStateT],
    Generic[DepsT, ConfigT, RuntimeStateT],
):
    """A layer of the plain family: `PlainLayer[Deps, Config, RuntimeState]`.

    Config and runtime state default to the empty ones, so `PlainLayer[NoLayerDeps]` is a complete
    base for a layer without dependencies, settings or state.
    """

    def wrap_prompt(self, prompt: str) -> str:
        """Plain prompts are aggregated as they are."""
        return prompt

    def wrap_user_prompt(self, user_prompt: str) -> str:
        """Plain user prompts are aggregated as they are."""
        return user_prompt

    def wrap_tool(self, tool: PlainTool) -> PlainTool:
        """Plain tools are aggregated as they are."""
        return tool
