"""`execution_context`: who and where a run executes for, readable by other layers.

Identity only: ids the caller supplies (tenant, app, workflow, node…). The server fills
`tenant_id` with the caller's tenant, so a request cannot claim another tenant's identity.
"""

from __future__ import annotations

from pydantic import Field

from app.compositor import LayerConfig, NoLayerDeps
from app.layers.base import AgentLayer


class ExecutionContextConfig(LayerConfig):
    tenant_id: str | None = Field(default=None, max_length=64)
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
    type_id = "execution_context"
