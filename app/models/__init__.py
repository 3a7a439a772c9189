"""The ORM models: one aggregate per module, all on one `Base.metadata`.

Importing this package registers every table on `Base.metadata` (Alembic's `env.py` and the
schema tests rely on that). Models have no relationships: repositories load related rows with
explicit queries, so nothing is ever lazy-loaded behind an `await`.
"""

from app.models.agent import (
    DEFAULT_AGENT_KIND,
    Agent,
    AgentConfigOperation,
    AgentConfigRevision,
    AgentConfigSnapshot,
    AgentIconType,
    AgentScope,
    AgentSource,
    AgentStatus,
)
from app.models.api_key import ApiKey, ApiKeyRole
from app.models.base import Base, JSONType, StrEnumType, UTCDateTime, new_id, utcnow
from app.models.binding import BindingType, WorkflowAgentNodeBinding
from app.models.run import TERMINAL_RUN_STATUSES, Run, RunEvent, RunPurpose, RunStatus
from app.models.runtime_session import RuntimeSessionStatus, WorkflowAgentRuntimeSession
from app.models.tenant import Tenant
from app.models.worker import Worker
from app.models.workflow_run import WorkflowRun, WorkflowRunAgentVersion, WorkflowRunStatus

__all__ = [
    "DEFAULT_AGENT_KIND",
    "TERMINAL_RUN_STATUSES",
    "Agent",
    "AgentConfigOperation",
    "AgentConfigRevision",
    "AgentConfigSnapshot",
    "AgentIconType",
    "AgentScope",
    "AgentSource",
    "AgentStatus",
    "ApiKey",
    "ApiKeyRole",
    "Base",
    "BindingType",
    "JSONType",
    "Run",
    "RunEvent",
    "RunPurpose",
    "RunStatus",
    "RuntimeSessionStatus",
    "StrEnumType",
    "Tenant",
    "UTCDateTime",
    "Worker",
    "WorkflowAgentNodeBinding",
    "WorkflowAgentRuntimeSession",
    "WorkflowRun",
    "WorkflowRunAgentVersion",
    "WorkflowRunStatus",
    "new_id",
    "utcnow",
]
