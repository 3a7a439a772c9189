"""The request behind every client method but the runs and events ones, as a `Call`.

One function per method, with the method's name and parameters: `StrataClient` and
`AsyncStrataClient` send what these build, so the two cannot drift apart. Bodies are request
models or plain mappings (`request_body`); answers are the server's own response schemas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.agents.schemas import (
    AgentCreate,
    AgentPage,
    AgentRead,
    AgentSaveAs,
    AgentUpdate,
    BindingList,
    BindingPut,
    BindingRead,
    BindingsCopy,
    NodeRunRequest,
    RevisionPage,
    SaveResult,
    VersionPage,
    VersionRead,
    VersionSave,
)
from app.client._common import (
    CLEANUP_WAIT_SECONDS,
    Call,
    Id,
    expect_no_content,
    model_parser,
    query,
    request_body,
    v1_path,
)
from app.key_schemas import KeyCreated, KeyList, KeyRead
from app.models import AgentScope, AgentStatus, ApiKeyRole, RuntimeSessionStatus
from app.runs.schemas import RunRead
from app.sessions.schemas import RetireResponse, SessionPage, SessionRead

AgentStatusFilter = AgentStatus | str | Sequence[AgentStatus | str] | None

# --- agents, versions, revisions ---------------------------------------------------------------


def create_agent(request: AgentCreate | Mapping[str, Any]) -> Call[AgentRead]:
    return Call("POST", v1_path("agents"), model_parser(AgentRead), json=request_body(request))


def get_agent(agent_id: Id) -> Call[AgentRead]:
    return Call("GET", v1_path("agents", agent_id), model_parser(AgentRead))


def list_agents(
    scope: AgentScope | str | None,
    status: AgentStatusFilter,
    q: str | None,
    cursor: str | None,
    limit: int,
) -> Call[AgentPage]:
    statuses = [status] if isinstance(status, str) else status
    return Call(
        "GET",
        v1_path("agents"),
        model_parser(AgentPage),
        params=query(scope=scope, status=statuses, q=q, cursor=cursor, limit=limit),
        cursor_param="cursor",
    )


def update_agent(agent_id: Id, request: AgentUpdate | Mapping[str, Any]) -> Call[AgentRead]:
    return Call(
        "PATCH", v1_path("agents", agent_id), model_parser(AgentRead), json=request_body(request)
    )


def archive_agent(agent_id: Id) -> Call[AgentRead]:
    return Call("POST", v1_path("agents", agent_id, "archive"), model_parser(AgentRead))


def save_version(agent_id: Id, request: VersionSave | Mapping[str, Any]) -> Call[SaveResult]:
    return Call(
        "POST",
        v1_path("agents", agent_id, "versions"),
        model_parser(SaveResult),
        json=request_body(request),
    )


def list_versions(agent_id: Id, before: int | None, limit: int) -> Call[VersionPage]:
    return Call(
        "GET",
        v1_path("agents", agent_id, "versions"),
        model_parser(VersionPage),
        params=query(before=before, limit=limit),
        cursor_param="before",
    )


def get_version(agent_id: Id, version: int) -> Call[VersionRead]:
    return Call("GET", v1_path("agents", agent_id, "versions", version), model_parser(VersionRead))


def list_revisions(agent_id: Id, before: int | None, limit: int) -> Call[RevisionPage]:
    return Call(
        "GET",
        v1_path("agents", agent_id, "revisions"),
        model_parser(RevisionPage),
        params=query(before=before, limit=limit),
        cursor_param="before",
    )


def save_agent_as(agent_id: Id, request: AgentSaveAs | Mapping[str, Any]) -> Call[SaveResult]:
    return Call(
        "POST",
        v1_path("agents", agent_id, "save-as"),
        model_parser(SaveResult),
        json=request_body(request),
    )


def save_agent_to_roster(agent_id: Id, name: str | None) -> Call[SaveResult]:
    return Call(
        "POST",
        v1_path("agents", agent_id, "save-to-roster"),
        model_parser(SaveResult),
        json={"name": name} if name is not None else {},
    )


# --- bindings ----------------------------------------------------------------------------------


def _binding_path(workflow_id: str, workflow_version: str, node_id: str) -> str:
    return v1_path(
        "workflows", workflow_id, "versions", workflow_version, "nodes", node_id, "binding"
    )


def put_binding(
    workflow_id: str,
    workflow_version: str,
    node_id: str,
    request: BindingPut | Mapping[str, Any],
) -> Call[BindingRead]:
    return Call(
        "PUT",
        _binding_path(workflow_id, workflow_version, node_id),
        model_parser(BindingRead),
        json=request_body(request),
    )


def get_binding(workflow_id: str, workflow_version: str, node_id: str) -> Call[BindingRead]:
    path = _binding_path(workflow_id, workflow_version, node_id)
    return Call("GET", path, model_parser(BindingRead))


def delete_binding(workflow_id: str, workflow_version: str, node_id: str) -> Call[None]:
    path = _binding_path(workflow_id, workflow_version, node_id)
    return Call("DELETE", path, expect_no_content)


def list_bindings(workflow_id: str, workflow_version: str) -> Call[BindingList]:
    path = v1_path("workflows", workflow_id, "versions", workflow_version, "bindings")
    return Call("GET", path, model_parser(BindingList))


def copy_bindings(
    workflow_id: str, workflow_version: str, request: BindingsCopy | Mapping[str, Any]
) -> Call[BindingList]:
    return Call(
        "POST",
        v1_path("workflows", workflow_id, "versions", workflow_version, "bindings", "copy"),
        model_parser(BindingList),
        json=request_body(request),
    )


# --- node runs ---------------------------------------------------------------------------------


def create_node_run(
    workflow_run_id: str,
    node_id: str,
    request: NodeRunRequest | Mapping[str, Any],
    idempotency_key: str | None,
) -> Call[RunRead]:
    return Call(
        "POST",
        v1_path("workflow-runs", workflow_run_id, "nodes", node_id, "runs"),
        model_parser(RunRead),
        json=request_body(request),
        headers={"Idempotency-Key": idempotency_key} if idempotency_key is not None else None,
    )


# --- sessions ----------------------------------------------------------------------------------


def list_sessions(
    workflow_run_id: str | None,
    status: RuntimeSessionStatus | str | None,
    cursor: str | None,
    limit: int,
) -> Call[SessionPage]:
    return Call(
        "GET",
        v1_path("sessions"),
        model_parser(SessionPage),
        params=query(workflow_run_id=workflow_run_id, status=status, cursor=cursor, limit=limit),
        cursor_param="cursor",
    )


def get_session(session_id: Id) -> Call[SessionRead]:
    return Call("GET", v1_path("sessions", session_id), model_parser(SessionRead))


def retire_session(session_id: Id, wait_seconds: float) -> Call[RetireResponse]:
    return Call(
        "POST",
        v1_path("sessions", session_id, "retire"),
        model_parser(RetireResponse),
        json={"wait_seconds": wait_seconds},
        hold_seconds=wait_seconds + CLEANUP_WAIT_SECONDS,
    )


def retire_workflow_run(
    workflow_run_id: str, wait_seconds: float, cursor: str | None, limit: int
) -> Call[RetireResponse]:
    body: dict[str, Any] = {
        "workflow_run_id": workflow_run_id,
        "wait_seconds": wait_seconds,
        "limit": limit,
    }
    if cursor is not None:
        body["cursor"] = cursor
    return Call(
        "POST",
        v1_path("sessions", "retire"),
        model_parser(RetireResponse),
        json=body,
        hold_seconds=wait_seconds + CLEANUP_WAIT_SECONDS,
        cursor_param="cursor",
        cursor_in_body=True,
    )


# --- API keys (admin) --------------------------------------------------------------------------


def create_key(role: ApiKeyRole | str, label: str | None) -> Call[KeyCreated]:
    body: dict[str, Any] = {"role": str(role)}
    if label is not None:
        body["label"] = label
    return Call("POST", v1_path("keys"), model_parser(KeyCreated), json=body)


def list_keys() -> Call[KeyList]:
    return Call("GET", v1_path("keys"), model_parser(KeyList))


def revoke_key(key_id: Id) -> Call[KeyRead]:
    return Call("POST", v1_path("keys", key_id, "revoke"), model_parser(KeyRead))
