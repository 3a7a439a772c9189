"""The seed protocol as its client sees it, written from `reference/seed-protocol.md` alone.

Every model forbids unknown fields, like the seed's client: a response with one field too many
(or one missing) fails to parse here. Nothing is imported from `app.compat`, so these models
check the server's models instead of repeating them. `pydantic_ai_event` data is parsed with
pydantic-ai's own `AgentStreamEvent`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic_ai.messages import AgentStreamEvent

Status = Literal["running", "succeeded", "failed", "cancelled"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateRunResponse(Strict):
    run_id: str
    status: Status


class RunStatusResponse(Strict):
    run_id: str
    status: Status
    created_at: datetime
    updated_at: datetime
    error: str | None


class CancelRunResponse(Strict):
    run_id: str
    status: Literal["cancelled"]


class Usage(Strict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_unit_price: Decimal
    prompt_price_unit: Decimal
    prompt_price: Decimal
    completion_unit_price: Decimal
    completion_price_unit: Decimal
    completion_price: Decimal
    total_price: Decimal
    currency: str
    latency: float
    time_to_first_token: float | None = None
    time_to_generate: float | None = None


class DeferredToolCall(Strict):
    tool_call_id: str
    tool_name: str
    args: Any
    metadata: dict[str, Any]


class RunStartedData(Strict):
    pass


class RunSucceededData(Strict):
    output: Any = None
    deferred_tool_call: DeferredToolCall | None = None
    session_snapshot: dict[str, Any] | None
    usage: Usage | None = None

    @model_validator(mode="after")
    def _exactly_one_result(self) -> RunSucceededData:
        present = {"output", "deferred_tool_call"} & self.model_fields_set
        if len(present) != 1:
            raise ValueError(f"exactly one of output / deferred_tool_call, got {present}")
        return self


class RunFailedData(Strict):
    error: str
    reason: str | None


class RunCancelledData(Strict):
    reason: str | None
    message: str | None


class _Event(Strict):
    id: str | None
    run_id: str
    created_at: datetime


class RunStartedEvent(_Event):
    type: Literal["run_started"]
    data: RunStartedData


class PydanticAIEvent(_Event):
    type: Literal["pydantic_ai_event"]
    data: AgentStreamEvent
    agent_message_delta: str | None = None


class RunSucceededEvent(_Event):
    type: Literal["run_succeeded"]
    data: RunSucceededData


class RunFailedEvent(_Event):
    type: Literal["run_failed"]
    data: RunFailedData


class RunCancelledEvent(_Event):
    type: Literal["run_cancelled"]
    data: RunCancelledData


Event = Annotated[
    RunStartedEvent | PydanticAIEvent | RunSucceededEvent | RunFailedEvent | RunCancelledEvent,
    Field(discriminator="type"),
]
EVENT: TypeAdapter[Event] = TypeAdapter(Event)
TERMINAL = ("run_succeeded", "run_failed", "run_cancelled")


class EventsPage(Strict):
    run_id: str
    events: list[Event]
    next_cursor: str | None


class HTTPError(Strict):
    """FastAPI's error body: a message, or (422) a list of validation errors."""

    detail: str | list[dict[str, Any]]
