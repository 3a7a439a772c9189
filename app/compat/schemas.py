"""The wire models of the seed protocol (`reference/seed-protocol.md`, generation G1c).

The seed's client validates every response with models that forbid unknown fields, so each
response model here carries exactly the protocol's fields and nothing else; optional fields the
protocol marks with `?` are left out of the JSON when they do not apply (the models are dumped
with `exclude_unset`, see `dump`). Request models forbid unknown fields too, like the seed's.

The composition, `on_exit` and `deferred_tool_results` have the same shape in both protocols, so
they are Strata's own models: a request is validated exactly like one posted to `/v1/runs`.
Component names start with `Seed` so that the OpenAPI document keeps them apart from `/v1`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.runs.schemas import EXAMPLE_RUN, OnExit, RunComposition

SeedStatus = Literal["running", "succeeded", "failed", "cancelled"]
"""A run's status in the protocol: a queued run is `running`, a paused one `succeeded`."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- requests ---------------------------------------------------------------------------------


class SeedDeferredToolResults(_Wire):
    """The protocol's answers to deferred calls: results only (it has no approvals)."""

    calls: dict[str, JsonValue] = Field(
        default_factory=dict, description="Results of deferred calls, keyed by `tool_call_id`."
    )
    metadata: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)


class SeedCreateRunRequest(_Wire):
    """`POST /runs`: a composition, optionally the previous run's snapshot and the answers to
    its deferred tool calls."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RUN]})

    composition: RunComposition
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The same key with the same body answers the run it created the first time.",
    )
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    session_snapshot: dict[str, JsonValue] | None = Field(
        default=None, description="The snapshot a previous run of this agent session returned."
    )
    deferred_tool_results: SeedDeferredToolResults | None = Field(
        default=None,
        description="Answers to the deferred tool call a previous run stopped at (with its "
        "`session_snapshot`), keyed by `tool_call_id`.",
    )
    on_exit: OnExit = Field(default_factory=OnExit)


class SeedCancelRunRequest(_Wire):
    """`POST /runs/{run_id}/cancel`. Strata keeps one cancel text: `message`, else `reason`, or
    `<reason>: <message>` when both are given."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "user_requested", "message": "Stopped."}]}
    )

    reason: str | None = Field(default=None, max_length=1000)
    message: str | None = Field(default=None, max_length=1000)


# --- responses --------------------------------------------------------------------------------


class SeedRunCreated(_Wire):
    run_id: str
    status: SeedStatus


class SeedRunStatus(_Wire):
    run_id: str
    status: SeedStatus
    created_at: datetime
    updated_at: datetime
    error: str | None = Field(description="Why the run failed or was cancelled; else null.")


class SeedRunCancelled(_Wire):
    run_id: str
    status: Literal["cancelled"]


class SeedUsage(_Wire):
    """Token usage in the seed's shape. Strata prices nothing: every price is 0."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_unit_price: float
    prompt_price_unit: float
    prompt_price: float
    completion_unit_price: float
    completion_price_unit: float
    completion_price: float
    total_price: float
    currency: str
    latency: float = Field(description="Seconds from the run's start to its end.")
    time_to_first_token: float | None = None
    time_to_generate: float | None = None


class SeedDeferredToolCall(_Wire):
    tool_call_id: str
    tool_name: str
    args: JsonValue
    metadata: dict[str, JsonValue]


class SeedRunStartedData(_Wire):
    """`run_started` carries no data."""


class SeedRunSucceededData(_Wire):
    """Exactly one of `output` and `deferred_tool_call` is present."""

    output: JsonValue = None
    deferred_tool_call: SeedDeferredToolCall | None = None
    session_snapshot: dict[str, Any] | None
    usage: SeedUsage | None = None


class SeedRunFailedData(_Wire):
    error: str
    reason: str | None


class SeedRunCancelledData(_Wire):
    reason: str | None
    message: str | None


class _Event(_Wire):
    id: str | None = Field(description="The event's cursor: pass it as `after` to resume.")
    run_id: str
    created_at: datetime


class SeedRunStartedEvent(_Event):
    type: Literal["run_started"]
    data: SeedRunStartedData


class SeedStreamEvent(_Event):
    """A pydantic-ai `AgentStreamEvent` as pydantic-ai serializes it."""

    type: Literal["pydantic_ai_event"]
    data: dict[str, Any]
    agent_message_delta: str | None = Field(
        default=None, description="The text of a text delta; absent on other events."
    )


class SeedRunSucceededEvent(_Event):
    type: Literal["run_succeeded"]
    data: SeedRunSucceededData


class SeedRunFailedEvent(_Event):
    type: Literal["run_failed"]
    data: SeedRunFailedData


class SeedRunCancelledEvent(_Event):
    type: Literal["run_cancelled"]
    data: SeedRunCancelledData


SeedEvent = Annotated[
    SeedRunStartedEvent
    | SeedStreamEvent
    | SeedRunSucceededEvent
    | SeedRunFailedEvent
    | SeedRunCancelledEvent,
    Field(discriminator="type"),
]
TERMINAL_TYPES = frozenset({"run_succeeded", "run_failed", "run_cancelled"})


class SeedEventPage(_Wire):
    run_id: str
    events: list[SeedEvent]
    next_cursor: str | None = Field(
        description="Pass as `after` for the next page; null once the page holds the run's "
        "terminal event or the run ended before `after` (nothing more will come)."
    )


# --- errors -----------------------------------------------------------------------------------


class SeedError(BaseModel):
    """The protocol's error body (FastAPI's): a message in `detail`."""

    detail: str


class SeedErrorItem(BaseModel):
    type: str = Field(description="A pydantic error type, or Strata's error code.")
    loc: list[str | int] = Field(description="Where: e.g. `['body', 'composition']`.")
    msg: str
    ctx: dict[str, Any] | None = Field(default=None, description="Strata's error details.")


class SeedErrorList(BaseModel):
    """422: FastAPI's list of validation errors (Strata's domain errors are items too)."""

    detail: list[SeedErrorItem]


def dump(model: BaseModel) -> str:
    """A response model as JSON, without the optional fields that were never set."""
    return model.model_dump_json(exclude_unset=True)
