"""`execution_context`: who and where a run executes for, readable by other layers.

Identity only: ids the caller supplies (tenant, app, workflow, node…). The server fills
`tenant_id` with the caller's tenant, so a request cannot claim another tenant's identity, and
`run_id` with the id of the run being executed (`with_run_id`, called by the runner), so layers
that report to the caller (`tools.http`) can say which run they act for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from app.compositor import LayerConfig, NoLayerDeps
from app.layers.base import AgentLayer

TYPE_ID = "execution_context"


class ExecutionContextConfig(LayerConfig):
    tenant_id: str | None = Field(
        default=None, max_length=64, description="Set by the server: the caller's tenant."
    )
    run_id: str | None = Field(
        default=None,
        max_length=64,
        description="Set by the server when the run executes: the run's id (a value in the "
        "request is replaced).",
    )
    user_id: str | None = Field(default=None, max_length=64)
    app_id: str | None = Field(default=None, max_length=64)
    workflow_id: str | None = Field(default=None, max_length=64)
    workflow_run_id: str | None = Field(default=None, max_length=64)
    node_id: str | None = Field(default=None, max_length=64)
    node_execution_id: str | None = Field(default=None, max_length=64)
    agent_id: str | None = Field(default=None, max_length=64)
    agent_config_snapshot_id: str | None = Field(default=None, max_length=64)
    invoke_from: str | None = Field(default=None, max_length=64)
    trace_id: str | None = Field(default=None, max_length=128)


class ExecutionContextLayer(AgentLayer[NoLayerDeps, ExecutionContextConfig]):
    type_id = TYPE_ID

    def identity(self) -> dict[str, Any]:
        """The context as JSON, without the fields nobody set."""
        return self.config.model_dump(mode="json", exclude_none=True)


def with_run_id(
    layers: Iterable[tuple[str, str]], configs: Mapping[str, Any], run_id: str
) -> dict[str, Any]:
    """`configs` with `run_id` set in the config of every `execution_context` layer.

    `layers` are the composition's (name, type) pairs. The other configs are returned as they
    are; nothing is modified in place.
    """
    bound = dict(configs)
    for name, type_id in layers:
        if type_id == TYPE_ID:
            bound[name] = {**dict(bound.get(name) or {}), "run_id": run_id}
    return bound
