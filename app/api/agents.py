"""`/v1/agents`: the roster, config versions (immutable snapshots) and the revision log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from app.agents import service, versions
from app.agents.schemas import (
    AgentCreate,
    AgentPage,
    AgentRead,
    AgentSaveAs,
    AgentUpdate,
    RevisionPage,
    SaveResult,
    SaveToRoster,
    VersionPage,
    VersionRead,
    VersionSave,
)
from app.api.deps import ReadDb, State, Write
from app.api.edge import INT32_MAX, StrataRoute
from app.api.errors import ErrorResponse
from app.api.roles import Reader, Runner
from app.models import AgentScope, AgentStatus

router = APIRouter(prefix="/v1/agents", tags=["agents"], route_class=StrataRoute)

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    404: {"model": ErrorResponse, "description": "`agent_not_found`: no such agent here."},
}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "`request_invalid`: e.g. a bad config."}
}
_CHECKED: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorResponse,
        "description": "`request_invalid` (e.g. an unknown field in the config), or the code a "
        "node run of this config would get on this server, nothing stored: "
        "`unknown_model_provider`, `unknown_layer_type`, `invalid_layer_config`, "
        "`unsupported_model_setting`, `invalid_model_setting`; `details.field` points into "
        "the config.",
    }
}
_NAME_TAKEN = "`agent_name_taken`: an active roster agent has this name."
_ARCHIVED = "`agent_archived`: archived agents are read-only."


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an agent",
    description=(
        "Creates the agent with config version 1 and a `create_version` revision 1. The config "
        "is checked as a node run of it would be (model provider, layer types and configs "
        "against this server's allow-list)."
    ),
    responses={**_AUTH, **_CHECKED, 409: {"model": ErrorResponse, "description": _NAME_TAKEN}},
)
async def create_agent(
    body: AgentCreate, write: Write, principal: Runner, state: State
) -> AgentRead:
    return await write(service.create_agent, principal, body, state.registry)


@router.get(
    "",
    summary="List agents",
    description="The tenant's agents, newest first.",
    responses={**_AUTH, 400: {"model": ErrorResponse, "description": "`invalid_cursor`."}},
)
async def list_agents(
    db: ReadDb,
    principal: Reader,
    scope: Annotated[AgentScope | None, Query(description="Only this scope.")] = None,
    status_filter: Annotated[
        list[AgentStatus] | None,
        Query(alias="status", description="Repeat for several; default `active` only."),
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=255, description="Case-insensitive substring of the name."),
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AgentPage:
    return await service.list_agents(
        db,
        principal,
        scope=scope,
        statuses=status_filter or [AgentStatus.ACTIVE],
        name_contains=q,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{agent_id}", summary="Get an agent", responses=_ERRORS)
async def get_agent(agent_id: uuid.UUID, db: ReadDb, principal: Reader) -> AgentRead:
    return await service.get_agent(db, principal, agent_id)


@router.patch(
    "/{agent_id}",
    summary="Update an agent's name, description or icon",
    description="Only the fields present change. The config changes through `/versions`.",
    responses={
        **_ERRORS,
        **_INVALID,
        409: {"model": ErrorResponse, "description": f"{_NAME_TAKEN} {_ARCHIVED}"},
    },
)
async def update_agent(
    agent_id: uuid.UUID, body: AgentUpdate, write: Write, principal: Runner
) -> AgentRead:
    return await write(service.update_agent, principal, agent_id, body)


@router.post(
    "/{agent_id}/archive",
    summary="Archive an agent",
    description=(
        "The agent becomes read-only and leaves the roster: its name is free again. Bindings "
        "that use it keep working. Idempotent."
    ),
    responses=_ERRORS,
)
async def archive_agent(agent_id: uuid.UUID, write: Write, principal: Runner) -> AgentRead:
    return await write(service.archive_agent, principal, agent_id)


@router.post(
    "/{agent_id}/versions",
    status_code=status.HTTP_201_CREATED,
    summary="Save a config version",
    description=(
        "Writes a new immutable snapshot with the next version number, makes it the active "
        "one, and records a revision from the previous active snapshot to it. The config is "
        "checked as a node run of it would be; a refused one stores nothing."
    ),
    responses={**_ERRORS, **_CHECKED, 409: {"model": ErrorResponse, "description": _ARCHIVED}},
)
async def save_version(
    agent_id: uuid.UUID, body: VersionSave, write: Write, principal: Runner, state: State
) -> SaveResult:
    return await write(versions.save_version, principal, agent_id, body, state.registry)


@router.get(
    "/{agent_id}/versions",
    summary="List an agent's config versions",
    description="Newest first, without configs.",
    responses=_ERRORS,
)
async def list_versions(
    agent_id: uuid.UUID,
    db: ReadDb,
    principal: Reader,
    before: Annotated[
        int | None,
        Query(ge=1, le=INT32_MAX, description="Only versions below this (`next_cursor`)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> VersionPage:
    return await versions.list_versions(db, principal, agent_id, before=before, limit=limit)


@router.get(
    "/{agent_id}/versions/{version}",
    summary="Get one config version",
    responses={
        **_AUTH,
        404: {"model": ErrorResponse, "description": "`agent_not_found`, `version_not_found`."},
    },
)
async def get_version(
    agent_id: uuid.UUID,
    version: Annotated[int, Path(ge=1, le=INT32_MAX)],
    db: ReadDb,
    principal: Reader,
) -> VersionRead:
    return await versions.get_version(db, principal, agent_id, version)


@router.get(
    "/{agent_id}/revisions",
    summary="List an agent's revisions",
    description="The audit log of saves, newest first.",
    responses=_ERRORS,
)
async def list_revisions(
    agent_id: uuid.UUID,
    db: ReadDb,
    principal: Reader,
    before: Annotated[
        int | None,
        Query(ge=1, le=INT32_MAX, description="Only revisions below this (`next_cursor`)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RevisionPage:
    return await versions.list_revisions(db, principal, agent_id, before=before, limit=limit)


@router.post(
    "/{agent_id}/save-as",
    status_code=status.HTTP_201_CREATED,
    summary="Save as a new agent",
    description=(
        "Copies the agent (its active config unless `config` is given) into a new agent with "
        "version 1 and a `save_new_agent` revision whose previous snapshot is the source's. "
        "The new version's config (given or copied) is checked as a node run of it would be."
    ),
    responses={**_ERRORS, **_CHECKED, 409: {"model": ErrorResponse, "description": _NAME_TAKEN}},
)
async def save_as(
    agent_id: uuid.UUID, body: AgentSaveAs, write: Write, principal: Runner, state: State
) -> SaveResult:
    return await write(versions.save_as_new_agent, principal, agent_id, body, state.registry)


@router.post(
    "/{agent_id}/save-to-roster",
    summary="Promote a workflow-only agent to the roster",
    description="Writes a `save_to_roster` revision; the config does not change.",
    responses={
        **_ERRORS,
        **_INVALID,
        409: {
            "model": ErrorResponse,
            "description": f"{_NAME_TAKEN} `already_in_roster`. {_ARCHIVED}",
        },
    },
)
async def save_to_roster(
    agent_id: uuid.UUID, write: Write, principal: Runner, body: SaveToRoster | None = None
) -> SaveResult:
    return await write(versions.save_to_roster, principal, agent_id, body or SaveToRoster())
