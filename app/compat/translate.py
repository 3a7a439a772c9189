"""The mapping between the seed protocol and Strata's runs. Pure: no I/O, no HTTP.

- Requests: a `SeedCreateRunRequest` becomes a `CreateRunRequest` (an agent run, no session
  scope, default limits); both share the composition, snapshot and deferred-results models.
- Statuses: `queued`, `running`, `cancelling` → `running`; `paused` → `succeeded` (the seed has
  no paused state: a run that stops to ask a human *succeeds* with `deferred_tool_call`).
- Cursors: an event's cursor is `"<seq>-0"`; `"0-0"`, the client's first cursor, is the start.
- Events: `run_queued`, `run_cancelling`, `run_requeued` (and any type this module does not
  know) have no counterpart and are left out. Text deltas and tool calls and results become
  `pydantic_ai_event`s holding the pydantic-ai stream event Strata's record describes, serialized
  the way pydantic-ai serializes `AgentStreamEvent`s. Terminal events keep only the protocol's
  fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import TypeAdapter, ValidationError
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
)

from app.compat.schemas import (
    SeedCreateRunRequest,
    SeedDeferredToolCall,
    SeedEvent,
    SeedRunCancelledData,
    SeedRunCancelledEvent,
    SeedRunCreated,
    SeedRunFailedData,
    SeedRunFailedEvent,
    SeedRunStartedData,
    SeedRunStartedEvent,
    SeedRunStatus,
    SeedRunSucceededData,
    SeedRunSucceededEvent,
    SeedStatus,
    SeedStreamEvent,
    SeedUsage,
)
from app.errors import ValidationFailed
from app.models import RunStatus
from app.runs.outcome import TERMINAL_EVENT_TYPES
from app.runs.schemas import CreateRunRequest, RunEventRead, RunRead

# --- requests ---------------------------------------------------------------------------------


def strata_request(request: SeedCreateRunRequest) -> CreateRunRequest:
    """The `/v1` request a seed request stands for.

    Raises:
        ValidationFailed: `request_invalid`, when Strata's request model refuses what the seed
            model accepted (kept for safety: both use the same nested models).
    """
    body = request.model_dump(mode="json", exclude_unset=True)
    try:
        return CreateRunRequest.model_validate(body)
    except ValidationError as error:  # pragma: no cover - the shapes are shared
        raise ValidationFailed(
            "the request does not match Strata's run request",
            code="request_invalid",
            details={
                "errors": [
                    {"loc": ["body", *item["loc"]], "msg": item["msg"], "type": item["type"]}
                    for item in error.errors()
                ]
            },
        ) from None


def cancel_text(reason: str | None, message: str | None) -> str | None:
    """Strata's one cancel text for the seed's `reason` and `message`: the message, else the
    reason, or `<reason>: <message>` when both are given."""
    if reason and message:
        return f"{reason}: {message}"
    return message or reason or None


# --- statuses ---------------------------------------------------------------------------------

_STATUS: dict[RunStatus, SeedStatus] = {
    RunStatus.QUEUED: "running",
    RunStatus.RUNNING: "running",
    RunStatus.CANCELLING: "running",
    RunStatus.SUCCEEDED: "succeeded",
    RunStatus.PAUSED: "succeeded",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}


def seed_status(status: RunStatus) -> SeedStatus:
    return _STATUS[status]


def run_created(run: RunRead) -> SeedRunCreated:
    return SeedRunCreated(run_id=str(run.id), status=seed_status(run.status))


def run_status(run: RunRead) -> SeedRunStatus:
    """The status resource; `error` is set for failed and cancelled runs only."""
    status = seed_status(run.status)
    return SeedRunStatus(
        run_id=str(run.id),
        status=status,
        created_at=run.created_at,
        updated_at=run.updated_at,
        error=run.error if status in ("failed", "cancelled") else None,
    )


# --- cursors ----------------------------------------------------------------------------------

_MAX_SEQ = 2**31 - 1  # an event seq is an INTEGER column (`app.api.edge.INT32_MAX`)
START_CURSOR = "0-0"
CURSOR_PATTERN = r"^[0-9]{1,10}-0$"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(seq: int) -> str:
    return f"{seq}-0"


def decode_cursor(cursor: str | None, *, source: Literal["query", "header"] = "query") -> int:
    """The event seq a cursor stands for (0 for none, blank or `"0-0"`).

    Raises:
        ValidationFailed: `invalid_cursor`, for anything but `"<seq>-0"` with a seq that fits
            an event seq column.
    """
    if cursor is None or not cursor.strip():
        return 0
    value = cursor.strip()
    seq = int(value[:-2]) if _CURSOR.match(value) else -1
    if not 0 <= seq <= _MAX_SEQ:
        where = ["query", "after"] if source == "query" else ["header", "Last-Event-ID"]
        raise ValidationFailed(
            f"{value[:40]!r} is not an event cursor: use {START_CURSOR!r} or an event's `id`",
            code="invalid_cursor",
            details={"location": where},
        )
    return seq


# --- events -----------------------------------------------------------------------------------

_STREAM_EVENT: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)
ToolOutcome = Literal["success", "failed", "denied", "interrupted", "retried"]
_TOOL_OUTCOMES: dict[str, ToolOutcome] = {outcome: outcome for outcome in get_args(ToolOutcome)}
"""`ToolReturnPart.outcome`'s values (a test checks they are pydantic-ai's)."""
_NOT_SERVED = frozenset({"run_queued", "run_cancelling", "run_requeued"})
"""Strata event types the protocol has no counterpart for."""


def stream_event_json(event: AgentStreamEvent) -> dict[str, Any]:
    """A pydantic-ai stream event as pydantic-ai serializes it (JSON-compatible values)."""
    data: dict[str, Any] = _STREAM_EVENT.dump_python(event, mode="json")
    return data


def seed_event(event: RunEventRead, run: RunRead | None = None) -> SeedEvent | None:
    """The protocol's form of a Strata event, or None when the protocol has none.

    `run` (the run as it ended) gives a terminal event's `usage.latency`; without it the
    latency is 0.
    """
    envelope = {
        "id": encode_cursor(event.seq),
        "run_id": str(event.run_id),
        "created_at": event.created_at,
    }
    data = event.data
    kind = event.type
    if kind in _NOT_SERVED:
        return None
    if kind == "run_started":
        return SeedRunStartedEvent(**envelope, type=kind, data=SeedRunStartedData())
    if kind == "agent_message_delta":
        text = str(data.get("delta", ""))
        delta = PartDeltaEvent(index=0, delta=TextPartDelta(content_delta=text))
        return SeedStreamEvent(
            **envelope,
            type="pydantic_ai_event",
            data=stream_event_json(delta),
            agent_message_delta=text,
        )
    if kind == "tool_call":
        return SeedStreamEvent(
            **envelope, type="pydantic_ai_event", data=stream_event_json(tool_call_event(data))
        )
    if kind == "tool_result":
        result = tool_result_event(data, event.created_at)
        return SeedStreamEvent(**envelope, type="pydantic_ai_event", data=stream_event_json(result))
    if kind in ("run_succeeded", "run_paused"):
        return SeedRunSucceededEvent(
            **envelope, type="run_succeeded", data=succeeded_data(data, run)
        )
    if kind == "run_failed":
        return SeedRunFailedEvent(
            **envelope,
            type=kind,
            data=SeedRunFailedData(
                error=str(data.get("error") or "the run failed"),
                reason=data.get("reason") or data.get("error_type"),
            ),
        )
    if kind == "run_cancelled":
        return SeedRunCancelledEvent(
            **envelope,
            type=kind,
            data=SeedRunCancelledData(reason=data.get("reason"), message=data.get("error")),
        )
    return None  # a type newer than this mapping: the client would refuse it


def tool_call_event(data: Mapping[str, Any]) -> FunctionToolCallEvent:
    """The pydantic-ai event of a `tool_call` record `{tool_call_id, tool_name, args}`."""
    return FunctionToolCallEvent(
        part=ToolCallPart(
            tool_name=str(data.get("tool_name", "")),
            args=data.get("args"),
            tool_call_id=str(data.get("tool_call_id", "")),
        )
    )


def tool_result_event(data: Mapping[str, Any], at: datetime) -> FunctionToolResultEvent:
    """The pydantic-ai event of a `tool_result` record `{tool_call_id, tool_name, content,
    outcome?, truncated?, content_chars?}`.

    `content` is the result as Strata recorded it (text, cut in the event past
    `STRATA_EVENT_TOOL_RESULT_MAX_CHARS`); a cut result says so in the part's `metadata`
    (`{"truncated": true, "content_chars": <full length>}`), which pydantic-ai reserves for the
    application and never sends to a model.
    """
    outcome = data.get("outcome")
    part = ToolReturnPart(
        tool_name=str(data.get("tool_name", "")),
        content=data.get("content"),
        tool_call_id=str(data.get("tool_call_id", "")),
        timestamp=at,
        outcome=_TOOL_OUTCOMES.get(str(outcome), "success"),
    )
    if data.get("truncated"):
        part.metadata = {"truncated": True, "content_chars": data.get("content_chars")}
    return FunctionToolResultEvent(part=part)


def succeeded_data(data: Mapping[str, Any], run: RunRead | None) -> SeedRunSucceededData:
    """`run_succeeded` data of a succeeded or paused run: the output, or the (first) pending
    deferred call; the resulting snapshot; usage in the seed's shape."""
    call = first_deferred_call(data)
    fields: dict[str, Any] = {"session_snapshot": data.get("session_snapshot")}
    if call is not None:
        fields["deferred_tool_call"] = call
    else:
        fields["output"] = data.get("output")
    usage = data.get("usage")
    if isinstance(usage, Mapping):
        fields["usage"] = seed_usage(usage, latency_seconds(run))
    return SeedRunSucceededData(**fields)


def first_deferred_call(data: Mapping[str, Any]) -> SeedDeferredToolCall | None:
    """The pending deferred call of a paused run's data: `deferred_tool_call`, or the first of
    a `deferred_tool_calls` list (the seed's client takes one call per run)."""
    call = data.get("deferred_tool_call")
    if not isinstance(call, Mapping):
        calls = data.get("deferred_tool_calls")
        call = calls[0] if isinstance(calls, list) and calls else None
    if not isinstance(call, Mapping):
        return None
    metadata = call.get("metadata")
    return SeedDeferredToolCall(
        tool_call_id=str(call.get("tool_call_id", "")),
        tool_name=str(call.get("tool_name", "")),
        args=call.get("args"),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
    )


def seed_usage(usage: Mapping[str, Any], latency: float) -> SeedUsage:
    """Strata's `{input_tokens, output_tokens, total_tokens, …}` in the seed's shape."""
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return SeedUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(usage.get("total_tokens") or prompt + completion),
        prompt_unit_price=0.0,
        prompt_price_unit=0.0,
        prompt_price=0.0,
        completion_unit_price=0.0,
        completion_price_unit=0.0,
        completion_price=0.0,
        total_price=0.0,
        currency="USD",
        latency=latency,
    )


def latency_seconds(run: RunRead | None) -> float:
    """Seconds from the run's start to its end (0 when it never started or has not ended)."""
    if run is None or run.started_at is None or run.finished_at is None:
        return 0.0
    return max(0.0, (run.finished_at - run.started_at).total_seconds())


def is_terminal(event: RunEventRead) -> bool:
    return event.type in TERMINAL_EVENT_TYPES
