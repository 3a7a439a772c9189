"""`/v1/workflows/{workflow_id}/versions/{workflow_version}/…`: workflow node bindings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from app.agents import bindings
from app.agents.bindings import NodeAddress
from app.agents.schemas import BindingList, BindingPut, BindingRead, BindingsCopy
from app.api.deps import ReadDb, State, Write
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse
from app.api.roles import Reader, Runner

router = APIRouter(prefix="/v1/workflows", tags=["bindings"], route_class=StrataRoute)

WorkflowId = Annotated[str, Path(min_length=1, max_length=64)]
WorkflowVersion = Annotated[str, Path(min_length=1, max_length=64)]
NodeId = Annotated[str, Path(min_length=1, max_length=64)]

_VERSION = "/{workflow_id}/versions/{workflow_version}"
_BINDING = _VERSION + "/nodes/{node_id}/binding"

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "`binding_not_found`."},
}


@router.put(
    _BINDING,
    summary="Bind a workflow node to an agent",
    description=(
        "Creates (201) or replaces (200) the node's binding. `roster_agent` names a roster "
        "agent and may pin one of its snapshots; `inline_agent` creates the node's own "
        "workflow-only agent, or gives it a new version when its config changed, and pins "
        "that snapshot."
    ),
    responses={
        **_AUTH,
        201: {"model": BindingRead, "description": "The binding was created."},
        404: {"model": ErrorResponse, "description": "`agent_not_found`."},
        409: {"model": ErrorResponse, "description": "`agent_archived`."},
        422: {
            "model": ErrorResponse,
            "description": "`request_invalid`, `agent_not_in_roster`, `snapshot_not_of_agent`; "
            "for an inline agent, the codes a node run of its config would get "
            "(`unknown_model_provider`, `unknown_layer_type`, `invalid_layer_config`…, with "
            "`details.field` under `agent.config`).",
        },
    },
)
async def put_binding(
    workflow_id: WorkflowId,
    workflow_version: WorkflowVersion,
    node_id: NodeId,
    body: BindingPut,
    write: Write,
    principal: Runner,
    state: State,
    response: Response,
) -> BindingRead:
    address = NodeAddress(workflow_id, workflow_version, node_id)
    binding, created = await write(bindings.put_binding, principal, address, body, state.registry)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return binding


@router.get(_BINDING, summary="Get a node's binding", responses={**_AUTH, **_NOT_FOUND})
async def get_binding(
    workflow_id: WorkflowId,
    workflow_version: WorkflowVersion,
    node_id: NodeId,
    db: ReadDb,
    principal: Reader,
) -> BindingRead:
    address = NodeAddress(workflow_id, workflow_version, node_id)
    return await bindings.get_binding(db, principal, address)


@router.delete(
    _BINDING,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a node's binding",
    description="The agent is left as it is.",
    responses={**_AUTH, **_NOT_FOUND},
)
async def delete_binding(
    workflow_id: WorkflowId,
    workflow_version: WorkflowVersion,
    node_id: NodeId,
    write: Write,
    principal: Runner,
) -> None:
    address = NodeAddress(workflow_id, workflow_version, node_id)
    await write(bindings.delete_binding, principal, address)


@router.get(
    _VERSION + "/bindings",
    summary="List a workflow version's bindings",
    responses=_AUTH,
)
async def list_bindings(
    workflow_id: WorkflowId,
    workflow_version: WorkflowVersion,
    db: ReadDb,
    principal: Reader,
) -> BindingList:
    return await bindings.list_bindings(db, principal, workflow_id, workflow_version)


@router.post(
    _VERSION + "/bindings/copy",
    summary="Copy a workflow version's bindings to another version",
    description=(
        "All or nothing, in one transaction (e.g. publishing a draft). Copies keep the agent "
        "and the pin; with `pin_followers`, a binding that follows its agent is pinned in the "
        "copy to the agent's current snapshot. Answers the target version's bindings."
    ),
    responses={
        **_AUTH,
        409: {"model": ErrorResponse, "description": "`bindings_exist` (without `replace`)."},
        422: {"model": ErrorResponse, "description": "`same_workflow_version`."},
    },
)
async def copy_bindings(
    workflow_id: WorkflowId,
    workflow_version: WorkflowVersion,
    body: BindingsCopy,
    write: Write,
    principal: Runner,
) -> BindingList:
    return await write(bindings.copy_bindings, principal, workflow_id, workflow_version, body)
