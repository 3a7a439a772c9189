"""Request and response schemas of the runs API.

Every request model forbids unknown fields, so a typo in a field name is a 422, not a silently
ignored option. Layer configs and session snapshots are accepted here as plain JSON objects and
checked against the composition by `app.runs.validation`, which can name the offending layer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator

from app.models import RunPurpose, RunStatus
from app.schemas.strict import SchemaVersion1, StrictFloat, StrictInt

LayerName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ExitIntentName(StrEnum):
    """What happens to a layer when the run ends."""

    SUSPEND = "suspend"  # keep its state resumable: the next run of the session continues it
    DELETE = "delete"  # release its resources for good: the snapshot entry becomes CLOSED


class RunLayerSpec(_Strict):
    """One layer of a composition: a type from the server's allow-list and its config."""

    name: LayerName = Field(
        description="Unique within the composition; `llm`, `history` and "
        "`output` are reserved for their layer families."
    )
    type: str = Field(min_length=1, max_length=128, description="Layer type id, e.g. `llm.test`.")
    deps: dict[str, str] = Field(
        default_factory=dict,
        description="Dependency field of this layer → name of an earlier layer.",
    )
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    config: dict[str, JsonValue] | None = Field(
        default=None, description="The layer type's config; null means `{}`."
    )


class RunComposition(_Strict):
    schema_version: SchemaVersion1 = 1
    layers: list[RunLayerSpec] = Field(max_length=64)


class OnExit(_Strict):
    """Exit intent for every layer, with per-layer overrides by name."""

    default: ExitIntentName = ExitIntentName.SUSPEND
    layers: dict[str, ExitIntentName] = Field(default_factory=dict)


class ApprovalAnswer(_Strict):
    """A human's decision on a tool call that needed approval."""

    approved: bool
    message: str | None = Field(
        default=None,
        max_length=4000,
        description="When denied: what the model is told instead of the tool's result.",
    )


class DeferredToolResults(_Strict):
    """Answers to every pending call of a paused run, keyed by `tool_call_id`: a result for
    each call of kind `call` (ask_human, tools.external), a decision for each of kind
    `approval`. A resume must answer all of them, and nothing else."""

    calls: dict[str, JsonValue] = Field(
        default_factory=dict, description="Results of deferred calls: the tool's return value."
    )
    approvals: dict[str, bool | ApprovalAnswer] = Field(
        default_factory=dict,
        description="Decisions on calls that needed approval: `true`, `false`, or "
        "`{approved, message}`; an approved call runs when the run resumes.",
    )
    metadata: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)

    def answered(self) -> set[str]:
        return set(self.calls) | set(self.approvals)


class RunLimits(_Strict):
    """Per-run limits; values above the server's maximums are lowered to them."""

    max_model_requests: StrictInt | None = Field(default=None, ge=1)
    timeout_seconds: StrictFloat | None = Field(default=None, gt=0)


class RetryPolicy(_Strict):
    """Opt-in automatic retries."""

    on_worker_lost: StrictInt = Field(
        default=0,
        ge=0,
        le=1,
        description="How many times a run whose worker died is started again (0 or 1).",
    )


class SessionScope(_Strict):
    """A runtime-session scope: the run loads the scope's snapshot and saves the new one."""

    app_id: str = Field(min_length=1, max_length=64)
    workflow_id: str = Field(min_length=1, max_length=64)
    workflow_run_id: str = Field(min_length=1, max_length=64)
    node_id: str = Field(min_length=1, max_length=64)
    node_execution_id: str | None = Field(default=None, max_length=64)
    binding_id: str = Field(min_length=1, max_length=64)
    agent_id: str = Field(min_length=1, max_length=64)
    agent_config_snapshot_id: str = Field(min_length=1, max_length=64)


EXAMPLE_RUN: dict[str, Any] = {
    "composition": {
        "layers": [
            {
                "name": "prompt",
                "type": "plain.prompt",
                "config": {"prefix": "You are terse.", "user": "Say hello to Strata."},
            },
            {"name": "history", "type": "pydantic_ai.history"},
            {"name": "llm", "type": "llm.test"},
        ]
    },
    "metadata": {"ticket": "DEMO-1"},
}
"""A run that executes on any server: a prompt, the message history and the test model."""


class CreateRunRequest(_Strict):
    """`POST /v1/runs`."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RUN]})

    composition: RunComposition
    session_snapshot: dict[str, JsonValue] | None = Field(
        default=None, description="The snapshot a previous run of this agent session returned."
    )
    session: SessionScope | None = None
    on_exit: OnExit = Field(default_factory=OnExit)
    deferred_tool_results: DeferredToolResults | None = None
    purpose: RunPurpose = RunPurpose.AGENT
    limits: RunLimits = Field(default_factory=RunLimits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Same as the `Idempotency-Key` header; the header wins when both are set.",
    )


class DeferredToolCall(BaseModel):
    """A call the model made that the run cannot complete itself: answer it to resume."""

    tool_call_id: str
    tool_name: str
    kind: Literal["call", "approval"] = Field(
        default="call",
        description="`call`: the caller runs the tool (ask_human, tools.external) and sends its "
        "result in `deferred_tool_results.calls`; `approval`: the tool needs a human's approval, "
        "sent in `deferred_tool_results.approvals`.",
    )
    args: JsonValue = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class RunUsage(BaseModel):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    tool_calls: int = 0


class RunRead(BaseModel):
    """A run as the API shows it. Terminal fields are null until the run is terminal."""

    id: uuid.UUID
    status: RunStatus
    purpose: RunPurpose
    attempt: int
    max_attempts: int
    session_id: uuid.UUID | None
    idempotency_key: str | None
    metadata: dict[str, JsonValue]
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    cancel_requested_at: datetime | None
    cancel_reason: str | None
    output: JsonValue = None
    deferred_tool_calls: list[DeferredToolCall] | None = Field(
        default=None,
        description="A paused run: every pending call; the resume must answer all of them.",
    )
    deferred_tool_call: DeferredToolCall | None = Field(
        default=None,
        description="The first of `deferred_tool_calls`, for clients written when a run paused "
        "on one call only; read `deferred_tool_calls`.",
    )
    session_snapshot: dict[str, Any] | None = None
    usage: RunUsage | None = None
    error: str | None = None
    error_type: str | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _first_pending_call(self) -> RunRead:
        if self.deferred_tool_call is None and self.deferred_tool_calls:
            self.deferred_tool_call = self.deferred_tool_calls[0]
        return self


class RunPage(BaseModel):
    items: list[RunRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class CancelRunRequest(_Strict):
    reason: str | None = Field(default=None, max_length=2000)


class RunEventRead(BaseModel):
    """One entry of a run's event log."""

    seq: int = Field(description="Position in the run's log: 1, 2, 3… without gaps.")
    run_id: uuid.UUID
    type: str = Field(
        description="run_queued, run_started, agent_message_delta, tool_call, tool_result, "
        "run_cancelling, run_requeued, or a terminal type: run_succeeded, run_paused, "
        "run_failed, run_cancelled."
    )
    data: dict[str, Any]
    created_at: datetime


class RunEventPage(BaseModel):
    items: list[RunEventRead]
    next_cursor: int = Field(
        description="Pass as `after` for the next page: the last seq returned, or the given "
        "`after` when the page is empty."
    )
    terminal: bool = Field(description="True when this page ends with the run's terminal event.")
