"""Strata's layer family and the roles the runner looks for.

`AgentLayer` fixes the compositor's item types for pydantic-ai: system prompt fragments and user
prompt fragments are strings, tools are `pydantic_ai.Tool`s. The runner finds the special layers
by role, through these base classes, not by name:

- `ModelLayer` (the `llm` family) builds the pydantic-ai model;
- `HistoryLayer` keeps the message history in its runtime state;
- `OutputLayer` declares a structured output type;
- a layer whose tools raise `CallDeferred` (ask_human) makes a run end `paused`.

`session_replayable = False` marks layer types that must not be replayed by a session's cleanup run
(the model layer: a cleanup run calls no model, and its provider may need credentials).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel
from pydantic_ai import Tool
from pydantic_ai.models import Model
from typing_extensions import TypeVar

from app.compositor import EmptyLayerConfig, EmptyRuntimeState, Layer, LayerConfig, LayerDeps

DepsT = TypeVar("DepsT", bound=LayerDeps)
ConfigT = TypeVar("ConfigT", bound=LayerConfig, default=EmptyLayerConfig)
StateT = TypeVar("StateT", bound=BaseModel, default=EmptyRuntimeState)

#: Names that only their own family may use, and that family's required name.
RESERVED_NAMES = {"llm": "model", "history": "history", "output": "output"}


class AgentLayer(Layer[DepsT, str, str, Tool[Any], ConfigT, StateT]):
    """A layer of a Strata run: string prompts, pydantic-ai tools."""

    session_replayable: ClassVar[bool] = True
    #: The family a reserved name belongs to (`RESERVED_NAMES`), or None.
    role: ClassVar[str | None] = None


class ModelLayer(AgentLayer[DepsT, ConfigT, StateT]):
    """The `llm` family: turns its config into a pydantic-ai model."""

    session_replayable = False
    role = "model"

    def build_model(self) -> Model:
        raise NotImplementedError


class HistoryLayer(AgentLayer[DepsT, ConfigT, StateT]):
    """Keeps the conversation so the session remembers it."""

    role = "history"


class OutputLayer(AgentLayer[DepsT, ConfigT, StateT]):
    """Declares the run's structured output type."""

    role = "output"

    def output_type(self) -> Any:
        raise NotImplementedError

    def validate_output(self, value: Any) -> Any:
        """Check (and possibly convert) the answer; raise `ModelRetry` to ask for another."""
        return value
