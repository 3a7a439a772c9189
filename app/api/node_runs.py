"""`POST /v1/workflow-runs/{workflow_run_id}/nodes/{node_id}/runs`: run a bound workflow node."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response, status

from app.agents import node_runs
from app.agents.schemas import NodeRunRequest
from app.api.deps import Accepting, State
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse
from app.api.request_context import bind_run_id
from app.api.roles import Runner
from app.runs.schemas import RunRead

router = APIRouter(prefix="/v1/workflow-runs", tags=["node runs"], route_class=StrataRoute)

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RunRead, "description": "Replay of an earlier request with this key."},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    404: {"model": ErrorResponse, "description": "`binding_not_found`."},
    409: {
        "model": ErrorResponse,
        "description": "`session_busy`, `idempotency_key_reused`, `workflow_run_closed` (the "
        "workflow run was closed).",
    },
    422: {
        "model": ErrorResponse,
        "description": "`agent_model_not_configured`, or any run validation error.",
    },
}


@router.post(
    "/{workflow_run_id}/nodes/{node_id}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Accepting],
    summary="Run a workflow node's bound agent",
    description=(
        "Resolves the node's binding in `workflow_id`/`workflow_version` to the agent's config "
        "snapshot (pinned or active), builds the composition (soul prompt, job prompt, a user "
        "prompt from `inputs`, history, model, structured output from the declared outputs, "
        "ask_human when human contacts are configured), attaches the runtime session of "
        "(workflow run, node, binding, agent) and queues a normal run. A binding that follows "
        "its agent uses the agent version fixed for this workflow run by its first node run "
        "that used the agent (see `GET /v1/workflow-runs/{workflow_run_id}`); edits of the "
        "agent apply from the next workflow run. A closed workflow run refuses node runs (409)."
    ),
    responses=_RESPONSES,
)
async def create_node_run(
    workflow_run_id: Annotated[str, Path(min_length=1, max_length=64)],
    node_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: NodeRunRequest,
    principal: Runner,
    state: State,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> RunRead:
    run, created = await node_runs.create_node_run(
        state.db,
        principal=principal,
        workflow_run_id=workflow_run_id,
        node_id=node_id,
        body=body,
        idempotency_key=idempotency_key,
        registry=state.registry,
        settings=state.settings,
        policy=state.policy,
        quota=state.quota,
        directory=state.directory,
    )
    bind_run_id(run.id)
    if not created:
        response.status_code = status.HTTP_200_OK
    return run
