"""Strata's layer family and the roles the runner looks for.

`AgentLayer` fixes the compositor's item types for pydantic-ai: system prompt fragments and user
prompt fragments are strings, tools are `pydantic_ai.Tool`s. The runner finds the special layers
by role, through these base classes, not by name:

- `ModelLayer` (the `llm` family) builds the pydantic-ai model;
- `HistoryLayer` keeps the message history in its runtime state;
- `OutputLayer` declares a structured output type;
- a layer whose tools raise `CallDeferred` (ask_human) makes a run end `paused`.

`session_replayable = False` marks layer types that must not be replayed by a session's cleanup run
(the model layer: a cleanup run calls no model, and its provider may need credentials; the tool
layers: they hold nothing between runs, so a cleanup run has nothing to release in them).

Request-time checks. Before a run is stored, `LayerRegistry.check_config` gives every layer type
two chances to reject its config with a stable code (a `LayerCheckError`): a config validator
that raises `config_error(code, message)` with a code listed in the type's
`config_error_codes` (checks that hold wherever the config is parsed), and the `check_config`
class method, which sees what this server offers by name (`ServerCatalog`: model providers, MCP
servers, tool endpoints) and rejects names the server does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import BaseModel
from pydantic_ai import Tool
from pydantic_ai.models import Model
from pydantic_core import PydanticCustomError
from typing_extensions import TypeVar

from app.compositor import EmptyLayerConfig, EmptyRuntimeState, Layer, LayerConfig, LayerDeps
from app.config import McpServerSettings, ModelProviderSettings, ToolEndpointSettings

DepsT = TypeVar("DepsT", bound=LayerDeps)
ConfigT = TypeVar("ConfigT", bound=LayerConfig, default=EmptyLayerConfig)
StateT = TypeVar("StateT", bound=BaseModel, default=EmptyRuntimeState)

#: Names that only their own family may use, and that family's required name.
RESERVED_NAMES = {"llm": "model", "history": "history", "output": "output"}


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ServerCatalog:
    """What this server offers by name; requests only ever name these entries.

    The entries hold endpoints and secrets: layers read them when they run, and request checks
    only test whether a name exists.
    """

    model_providers: Mapping[str, ModelProviderSettings] = field(default_factory=_empty)
    mcp_servers: Mapping[str, McpServerSettings] = field(default_factory=_empty)
    tool_endpoints: Mapping[str, ToolEndpointSettings] = field(default_factory=_empty)


class LayerCheckError(Exception):
    """A layer config that cannot run on this server: a 422 with a stable `code`.

    `field` is the path inside the layer's config (`provider`, `tools.1.name`…), or None.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class ToolSetupError(Exception):
    """A tool layer could not provide its tools (its server is unreachable, unknown…).

    Raised while the layer enters; the runner fails the run with `error_type` `tool_error` and
    `reason` set to `reason`. The message is meant for the caller: it names servers by their
    configured name and never carries a URL or a header.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def config_error(code: str, message: str) -> PydanticCustomError:
    """A config validation error whose `code` the request check reports as the 422 code.

    Raise it from a validator of a config model; list `code` in the layer type's
    `config_error_codes`. Elsewhere (where configs are parsed again) it is an ordinary
    validation error.
    """
    return PydanticCustomError(code, message)


class AgentLayer(Layer[DepsT, str, str, Tool[Any], ConfigT, StateT]):
    """A layer of a Strata run: string prompts, pydantic-ai tools."""

    session_replayable: ClassVar[bool] = True
    #: The family a reserved name belongs to (`RESERVED_NAMES`), or None.
    role: ClassVar[str | None] = None
    #: Validation error types of the config model that are reported as their own 422 code.
    config_error_codes: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def check_config(cls, config: Any, catalog: ServerCatalog) -> None:
        """Reject a validated config this server cannot run (`LayerCheckError`).

        Called before a run is stored. The default accepts everything.
        """


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
