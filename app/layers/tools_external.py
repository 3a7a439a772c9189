"""`tools.external`: tools the caller executes itself, between two runs.

Config `{tools: [{name, description, parameters}]}` (the same tool specs and request checks as
`tools.http`, without an endpoint). When the model calls one of these tools the run ends `paused`
and lists the call in `deferred_tool_calls` (kind `call`, metadata
`{"layer_type": "tools.external"}`); all calls of one model turn pause the run once, with
every pending call, including those of other deferring layers (`ask_human`, approvals).

The caller runs the tools and starts the next run with the paused run's snapshot, the same
composition (a `history` layer holds the pending calls) and
`deferred_tool_results.calls[tool_call_id] = result` for every listed call; the model then
continues. A result is any JSON value; the model sees it as the tool's return value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator
from pydantic_ai import CallDeferred, RunContext, Tool

from app.compositor import LayerConfig, NoLayerDeps
from app.jsonschema_check import UNSUPPORTED_PATTERN
from app.layers.base import AgentLayer
from app.layers.tools_http import MAX_TOOLS, HttpToolSpec, unique_tool_names


class ExternalToolsConfig(LayerConfig):
    """Tools the caller runs itself; a call pauses the run until the caller sends the result."""

    tools: list[HttpToolSpec] = Field(
        min_length=1, max_length=MAX_TOOLS, description="The tools, as the model sees them."
    )

    _unique_names = field_validator("tools")(unique_tool_names)


class ExternalToolsLayer(AgentLayer[NoLayerDeps, ExternalToolsConfig]):
    type_id = "tools.external"
    config_error_codes = frozenset(
        {"invalid_tool_name", "duplicate_tool_name", "invalid_tool_parameters", UNSUPPORTED_PATTERN}
    )

    @property
    def tools(self) -> Sequence[Tool[Any]]:
        return [self._tool(spec) for spec in self.config.tools]

    def _tool(self, spec: HttpToolSpec) -> Tool[Any]:
        metadata = {"layer_type": self.type_id}

        async def call_external_tool(ctx: RunContext[Any], /, **arguments: Any) -> Any:
            raise CallDeferred(metadata=metadata)

        return Tool.from_schema(
            call_external_tool,
            name=spec.name,
            description=spec.description,
            json_schema=dict(spec.parameters),
            takes_ctx=True,
        )
