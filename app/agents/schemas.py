"""Request and response schemas of the agents, bindings and node-run APIs.

Request models forbid unknown fields (a misspelt field is a 422, never silently dropped). Configs
are typed as `AgentSoulConfig` and `WorkflowNodeJobConfig`, so a bad config is rejected by request
validation (422 `request_invalid`, the offending field in `details.errors`) before any row exists.
Response models are built from rows by the `from_row` class methods; they carry descriptions
because they are the OpenAPI documentation of the resources.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from app.models import (
    Agent,
    AgentConfigOperation,
    AgentConfigRevision,
    AgentConfigSnapshot,
    AgentIconType,
    AgentScope,
    AgentSource,
    AgentStatus,
    BindingType,
    WorkflowAgentNodeBinding,
)
from app.runs.schemas import DeferredToolResults, RetryPolicy, RunLimits
from app.schemas import AgentSoulConfig, WorkflowNodeJobConfig
from app.schemas.agent_config import load_job_config, load_soul_config
from app.schemas.strict import StrictBool

AgentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Note = Annotated[str, StringConstraints(max_length=10_000)]
IconBackground = Annotated[str, StringConstraints(max_length=32)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- requests ------------------------------------------------------------------------------------


class AgentCreate(_Request):
    """`POST /v1/agents`: a new agent with its first config snapshot (version 1)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "researcher",
                    "scope": "roster",
                    "config": {
                        "prompt": {"system_prompt": "You research carefully."},
                        "model": {"provider": "test", "model": "test"},
                    },
                }
            ]
        }
    )

    name: AgentName = Field(description="Unique among the tenant's active roster agents.")
    description: str = Field(default="", max_length=10_000)
    icon_type: AgentIconType | None = None
    icon: str | None = Field(default=None, max_length=10_000)
    icon_background: IconBackground | None = None
    scope: AgentScope = Field(
        description="`roster`: reusable by any workflow; `workflow_only`: owned by one node."
    )
    source: AgentSource = AgentSource.AGENT_APP
    app_id: ExternalId | None = None
    workflow_id: ExternalId | None = None
    workflow_node_id: ExternalId | None = None
    config: AgentSoulConfig
    summary: Note | None = Field(default=None, description="Stored with version 1.")
    version_note: Note | None = Field(default=None, description="Stored with version 1.")


class AgentUpdate(_Request):
    """`PATCH /v1/agents/{id}`: presentation fields; only the fields present are changed.

    `name` and `description` may be left out but not set to null (the icon fields may: null
    clears them); their JSON schema says so, so the OpenAPI document matches what is accepted.
    """

    name: Annotated[
        AgentName | None,
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255}),
    ] = None
    description: Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": 10_000})] = (
        Field(default=None, max_length=10_000)
    )
    icon_type: AgentIconType | None = None
    icon: str | None = Field(default=None, max_length=10_000)
    icon_background: IconBackground | None = None

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> Self:
        for field in ("name", "description"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class VersionSaveOperation(StrEnum):
    """The two ways of saving a config on an existing agent (both write a new snapshot)."""

    SAVE_CURRENT_VERSION = "save_current_version"  # an edit of the version being worked on
    SAVE_NEW_VERSION = "save_new_version"  # a version the user chose to mark as new

    @property
    def operation(self) -> AgentConfigOperation:
        return AgentConfigOperation(self.value)


class VersionSave(_Request):
    """`POST /v1/agents/{id}/versions`: save a config as the agent's new active snapshot."""

    config: AgentSoulConfig
    operation: VersionSaveOperation = Field(
        description="`save_current_version`: an edit of the current version; it keeps the "
        "active snapshot's summary and note unless new ones are given. `save_new_version`: a "
        "version the user chose to mark as new. Both write a new immutable snapshot with the "
        "next version number and a revision naming the operation."
    )
    summary: Note | None = None
    version_note: Note | None = None


class AgentSaveAs(_Request):
    """`POST /v1/agents/{id}/save-as`: copy an agent's active config into a new agent."""

    name: AgentName
    description: str | None = Field(
        default=None, max_length=10_000, description="Default: the source agent's."
    )
    icon_type: AgentIconType | None = Field(default=None, description="Default: the source's.")
    icon: str | None = Field(default=None, max_length=10_000, description="Default: the source's.")
    icon_background: IconBackground | None = Field(
        default=None, description="Default: the source's."
    )
    scope: AgentScope = AgentScope.ROSTER
    config: AgentSoulConfig | None = Field(
        default=None, description="Default: the source agent's active config."
    )
    summary: Note | None = None
    version_note: Note | None = None


class SaveToRoster(_Request):
    """`POST /v1/agents/{id}/save-to-roster`: make a workflow-only agent a roster agent."""

    name: AgentName | None = Field(default=None, description="Default: the agent's name.")


class InlineAgent(_Request):
    """The workflow-only agent of an `inline_agent` binding."""

    name: AgentName
    description: str = Field(default="", max_length=10_000)
    icon_type: AgentIconType | None = None
    icon: str | None = Field(default=None, max_length=10_000)
    icon_background: IconBackground | None = None
    config: AgentSoulConfig
    summary: Note | None = None
    version_note: Note | None = None


class BindingPut(_Request):
    """`PUT …/nodes/{node_id}/binding`: bind a workflow node to an agent."""

    binding_type: BindingType
    agent_id: uuid.UUID | None = Field(
        default=None, description="The roster agent (`roster_agent` bindings only)."
    )
    agent: InlineAgent | None = Field(
        default=None,
        description="The node's own agent (`inline_agent` bindings only): created on the "
        "first PUT, given a new version on later PUTs whose config differs.",
    )
    app_id: ExternalId
    snapshot_id: uuid.UUID | None = Field(
        default=None,
        description="`roster_agent` only: pin this snapshot of the agent; null follows the "
        "agent's active snapshot. Inline bindings always pin the snapshot their PUT wrote.",
    )
    node_job_config: WorkflowNodeJobConfig

    @model_validator(mode="after")
    def _agent_matches_type(self) -> Self:
        if self.binding_type is BindingType.ROSTER_AGENT:
            if self.agent_id is None or self.agent is not None:
                raise ValueError("a roster_agent binding takes agent_id and no agent")
        elif self.agent is None or self.agent_id is not None or self.snapshot_id is not None:
            raise ValueError("an inline_agent binding takes agent and neither agent_id nor pin")
        return self


class BindingsCopy(_Request):
    """`POST …/bindings/copy`: copy every binding of a workflow version to another version."""

    target_version: ExternalId
    replace: StrictBool = Field(
        default=False,
        description="Delete the target version's bindings first; without it, a target that "
        "has bindings answers 409 `bindings_exist`.",
    )
    pin_followers: StrictBool = Field(
        default=False,
        description="Pin every copied binding that follows its agent (no `snapshot_id`) to the "
        "agent's current snapshot, so the target version keeps running what it was copied "
        "with when the agent is edited later (e.g. publishing a draft). Pinned bindings stay "
        "as they are.",
    )


class NodeRunInputs(BaseModel):
    """What the workflow engine hands the node for this run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    query: str | None = Field(default=None, description="The workflow's user query, if any.")
    previous_node_outputs: dict[str, JsonValue] = Field(
        default_factory=dict, description="Outputs of earlier nodes, by node id or label."
    )


class NodeRunRequest(BaseModel):
    """`POST /v1/workflow-runs/{workflow_run_id}/nodes/{node_id}/runs`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    workflow_id: str = Field(min_length=1, max_length=64)
    workflow_version: str = Field(min_length=1, max_length=64)
    node_execution_id: str = Field(min_length=1, max_length=64)
    inputs: NodeRunInputs = Field(default_factory=NodeRunInputs)
    deferred_tool_results: DeferredToolResults | None = None
    limits: RunLimits = Field(default_factory=RunLimits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


# --- responses -----------------------------------------------------------------------------------


class AgentRead(BaseModel):
    """An agent; its config is snapshot `active_config_snapshot_id` (`active_version`)."""

    id: uuid.UUID = Field(description="The agent id (UUIDv7: ids sort by creation time).")
    name: str = Field(description="Unique among the tenant's active roster agents.")
    description: str
    icon_type: AgentIconType | None = Field(description="How to read `icon`.")
    icon: str | None = Field(description="An emoji, an image id or an image URL.")
    icon_background: str | None = Field(description="Background colour behind the icon.")
    agent_kind: str = Field(description="`strata_agent` for agents Strata runs itself.")
    scope: AgentScope = Field(description="`roster` or `workflow_only`.")
    source: AgentSource = Field(description="What created the agent.")
    app_id: str | None = Field(description="The caller's app the agent belongs to, if any.")
    workflow_id: str | None = Field(description="For workflow-only agents: their workflow.")
    workflow_node_id: str | None = Field(description="For workflow-only agents: their node.")
    status: AgentStatus = Field(description="`active`, or `archived` (read-only, name freed).")
    active_config_snapshot_id: uuid.UUID | None = Field(
        description="The snapshot new roster-following bindings run."
    )
    active_version: int | None = Field(description="Version number of the active snapshot.")
    created_by: str | None = Field(description="Id of the API key that created the agent.")
    updated_by: str | None = Field(description="Id of the API key that last changed it.")
    archived_by: str | None = Field(description="Id of the API key that archived it.")
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, agent: Agent, active_version: int | None) -> Self:
        return cls(
            id=agent.id,
            name=agent.name,
            description=agent.description,
            icon_type=agent.icon_type,
            icon=agent.icon,
            icon_background=agent.icon_background,
            agent_kind=agent.agent_kind,
            scope=agent.scope,
            source=agent.source,
            app_id=agent.app_id,
            workflow_id=agent.workflow_id,
            workflow_node_id=agent.workflow_node_id,
            status=agent.status,
            active_config_snapshot_id=agent.active_config_snapshot_id,
            active_version=active_version,
            created_by=agent.created_by,
            updated_by=agent.updated_by,
            archived_by=agent.archived_by,
            archived_at=agent.archived_at,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
        )


class AgentPage(BaseModel):
    items: list[AgentRead] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class VersionSummary(BaseModel):
    """An immutable config snapshot, without its config."""

    id: uuid.UUID = Field(description="The snapshot id (what bindings pin).")
    agent_id: uuid.UUID
    version: int = Field(description="1, 2, 3… per agent, never reused.")
    summary: str | None = Field(description="A short description of the change.")
    version_note: str | None = Field(description="Release notes of the version.")
    is_active: bool = Field(description="True for the agent's active snapshot.")
    created_by: str | None = Field(description="Id of the API key that saved it.")
    created_at: datetime

    @classmethod
    def from_row(cls, snapshot: AgentConfigSnapshot, active_id: uuid.UUID | None) -> Self:
        return cls(
            id=snapshot.id,
            agent_id=snapshot.agent_id,
            version=snapshot.version,
            summary=snapshot.summary,
            version_note=snapshot.version_note,
            is_active=snapshot.id == active_id,
            created_by=snapshot.created_by,
            created_at=snapshot.created_at,
        )


class VersionRead(VersionSummary):
    """An immutable config snapshot with its config."""

    config: AgentSoulConfig = Field(description="The agent's soul config in this version.")

    @classmethod
    def from_row(cls, snapshot: AgentConfigSnapshot, active_id: uuid.UUID | None) -> Self:
        summary = VersionSummary.from_row(snapshot, active_id)
        return cls(**summary.model_dump(), config=load_soul_config(snapshot.config))


class VersionPage(BaseModel):
    items: list[VersionSummary] = Field(description="Newest (highest version) first.")
    next_cursor: int | None = Field(
        description="Pass as `before` for the next page (a version number); null at the end."
    )


class RevisionRead(BaseModel):
    """One save: the agent's current snapshot moved from `previous` to `current`."""

    id: uuid.UUID
    agent_id: uuid.UUID
    revision: int = Field(description="1, 2, 3… per agent, never reused.")
    operation: AgentConfigOperation = Field(description="The kind of save.")
    previous_snapshot_id: uuid.UUID | None = Field(
        description="The snapshot before the save: null for a new agent's first version, the "
        "source agent's snapshot for `save_new_agent`, the same as current for `save_to_roster`."
    )
    current_snapshot_id: uuid.UUID = Field(description="The active snapshot after the save.")
    summary: str | None
    version_note: str | None
    created_by: str | None = Field(description="Id of the API key that saved it.")
    created_at: datetime

    @classmethod
    def from_row(cls, revision: AgentConfigRevision) -> Self:
        return cls(
            id=revision.id,
            agent_id=revision.agent_id,
            revision=revision.revision,
            operation=revision.operation,
            previous_snapshot_id=revision.previous_snapshot_id,
            current_snapshot_id=revision.current_snapshot_id,
            summary=revision.summary,
            version_note=revision.version_note,
            created_by=revision.created_by,
            created_at=revision.created_at,
        )


class RevisionPage(BaseModel):
    items: list[RevisionRead] = Field(description="Newest (highest revision) first.")
    next_cursor: int | None = Field(
        description="Pass as `before` for the next page (a revision number); null at the end."
    )


class SaveResult(BaseModel):
    """The outcome of a save: the agent, its (new) active snapshot and the revision written."""

    agent: AgentRead = Field(description="The agent after the save.")
    version: VersionRead = Field(description="Its active snapshot after the save.")
    revision: RevisionRead = Field(description="The revision the save wrote.")


class BindingRead(BaseModel):
    """The agent a workflow node runs, and the job the node gives it."""

    id: uuid.UUID
    app_id: str = Field(description="The caller's app the workflow belongs to.")
    workflow_id: str
    workflow_version: str
    node_id: str
    binding_type: BindingType = Field(description="`roster_agent` or `inline_agent`.")
    agent_id: uuid.UUID = Field(description="The agent the node runs.")
    snapshot_id: uuid.UUID | None = Field(
        description="The pinned snapshot; null when the binding follows the agent's active one."
    )
    resolved_snapshot_id: uuid.UUID | None = Field(
        description="The snapshot a node run would use now (the pin, or the active snapshot)."
    )
    resolved_version: int | None = Field(description="Version number of `resolved_snapshot_id`.")
    node_job_config: WorkflowNodeJobConfig = Field(description="The job the node gives.")
    created_by: str | None = Field(description="Id of the API key that created the binding.")
    updated_by: str | None = Field(description="Id of the API key that last changed it.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(
        cls,
        binding: WorkflowAgentNodeBinding,
        resolved: AgentConfigSnapshot | None,
    ) -> Self:
        return cls(
            id=binding.id,
            app_id=binding.app_id,
            workflow_id=binding.workflow_id,
            workflow_version=binding.workflow_version,
            node_id=binding.node_id,
            binding_type=binding.binding_type,
            agent_id=binding.agent_id,
            snapshot_id=binding.current_snapshot_id,
            resolved_snapshot_id=resolved.id if resolved is not None else None,
            resolved_version=resolved.version if resolved is not None else None,
            node_job_config=load_job_config(binding.node_job_config),
            created_by=binding.created_by,
            updated_by=binding.updated_by,
            created_at=binding.created_at,
            updated_at=binding.updated_at,
        )


class BindingList(BaseModel):
    items: list[BindingRead] = Field(description="Ordered by node id.")


def dump_config(config: AgentSoulConfig | WorkflowNodeJobConfig) -> dict[str, Any]:
    """The JSON stored in a config column: every field, defaults included."""
    return config.model_dump(mode="json")
