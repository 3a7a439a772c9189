"""The seed protocol's mapping, without HTTP or a database (`app.compat.translate`, `errors`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args, get_type_hints

import pytest
from pydantic import TypeAdapter
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    TextPartDelta,
    ToolReturnPart,
)

from app.compat.errors import detail_body
from app.compat.schemas import SeedCreateRunRequest, dump
from app.compat.translate import (
    ToolOutcome,
    cancel_text,
    decode_cursor,
    encode_cursor,
    run_status,
    seed_event,
    seed_status,
    strata_request,
)
from app.errors import ValidationFailed
from app.models import RunPurpose, RunStatus
from app.runs.schemas import RunEventRead, RunRead
from tests.compat.protocol import EVENT, RunStatusResponse, RunSucceededData
from tests.runs.bodies import chat

RUN_ID = uuid.UUID("01936b2e-0000-7000-8000-000000000001")
AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STREAM_EVENT: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)


def event(kind: str, data: dict[str, Any], seq: int = 5) -> RunEventRead:
    return RunEventRead(seq=seq, run_id=RUN_ID, type=kind, data=data, created_at=AT)


def run(status: RunStatus, **values: Any) -> RunRead:
    fields: dict[str, Any] = {
        "id": RUN_ID,
        "status": status,
        "purpose": RunPurpose.AGENT,
        "attempt": 1,
        "max_attempts": 1,
        "session_id": None,
        "idempotency_key": None,
        "metadata": {},
        "created_at": AT,
        "queued_at": AT,
        "started_at": None,
        "finished_at": None,
        "updated_at": AT,
        "cancel_requested_at": None,
        "cancel_reason": None,
    }
    return RunRead.model_validate({**fields, **values})


def parse(translated: Any) -> Any:
    """The event as the client parses it from the JSON the server sends."""
    assert translated is not None
    return EVENT.validate_json(dump(translated))


def wire(translated: Any) -> dict[str, Any]:
    """The parsed event as a dict, with only the fields the JSON carried."""
    parsed: dict[str, Any] = parse(translated).model_dump(exclude_unset=True)
    return parsed


# --- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (RunStatus.QUEUED, "running"),
        (RunStatus.RUNNING, "running"),
        (RunStatus.CANCELLING, "running"),
        (RunStatus.SUCCEEDED, "succeeded"),
        (RunStatus.PAUSED, "succeeded"),
        (RunStatus.FAILED, "failed"),
        (RunStatus.CANCELLED, "cancelled"),
    ],
)
def test_every_strata_status_has_its_seed_status(status: RunStatus, expected: str) -> None:
    assert seed_status(status) == expected


def test_the_status_resource_carries_the_error_of_failed_and_cancelled_runs_only() -> None:
    failed = run_status(run(RunStatus.FAILED, error="model said no"))
    cancelling = run_status(run(RunStatus.CANCELLING, error=None))
    paused = run_status(run(RunStatus.PAUSED, error=None))

    assert RunStatusResponse.model_validate_json(dump(failed)).error == "model said no"
    assert cancelling.status == "running" and cancelling.error is None
    assert paused.status == "succeeded" and paused.error is None


# --- cursors ----------------------------------------------------------------------------------


def test_cursors_are_seq_dash_zero_and_0_0_is_the_start() -> None:
    assert encode_cursor(7) == "7-0"
    assert decode_cursor("7-0") == 7
    assert decode_cursor("0-0") == 0
    assert decode_cursor(None) == 0
    assert decode_cursor("  ") == 0
    assert decode_cursor(encode_cursor(2**31 - 1)) == 2**31 - 1


@pytest.mark.parametrize(
    "bad", ["7", "7-1", "-1-0", "x-0", "1-0-0", "99999999999-0", "2147483648-0"]
)
def test_anything_else_is_an_invalid_cursor(bad: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(bad, source="header")

    assert caught.value.code == "invalid_cursor"
    assert caught.value.details == {"location": ["header", "Last-Event-ID"]}


# --- requests ---------------------------------------------------------------------------------


def test_a_seed_request_becomes_the_same_v1_request() -> None:
    body = chat(
        "hi",
        metadata={"node": "n1"},
        idempotency_key="k1",
        on_exit={"default": "delete", "layers": {"history": "suspend"}},
        deferred_tool_results={"calls": {"c1": "yes"}, "metadata": {"c1": {"by": "ops"}}},
        session_snapshot={"schema_version": 1, "layers": []},
    )

    request = strata_request(SeedCreateRunRequest.model_validate(body))

    assert request.model_dump(mode="json", exclude_unset=True) == body
    assert request.purpose is RunPurpose.AGENT and request.session is None


def test_the_request_models_have_exactly_the_protocols_fields() -> None:
    schema = SeedCreateRunRequest.model_json_schema()
    defs = schema["$defs"]

    assert set(schema["properties"]) == {
        "composition",
        "idempotency_key",
        "metadata",
        "session_snapshot",
        "deferred_tool_results",
        "on_exit",
    }
    assert set(defs["RunComposition"]["properties"]) == {"schema_version", "layers"}
    assert set(defs["RunLayerSpec"]["properties"]) == {"name", "type", "deps", "metadata", "config"}
    assert set(defs["SeedDeferredToolResults"]["properties"]) == {"calls", "metadata"}
    assert set(defs["OnExit"]["properties"]) == {"default", "layers"}
    for model in (schema, *defs.values()):
        if model.get("type") == "object" and "properties" in model:
            assert model.get("additionalProperties") is False, model.get("title")


@pytest.mark.parametrize(
    ("reason", "message", "text"),
    [
        (None, None, None),
        ("user_requested", None, "user_requested"),
        (None, "Stopped.", "Stopped."),
        ("user_requested", "Stopped.", "user_requested: Stopped."),
        ("", "", None),
    ],
)
def test_strata_keeps_one_cancel_text(
    reason: str | None, message: str | None, text: str | None
) -> None:
    assert cancel_text(reason, message) == text


# --- events -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["run_queued", "run_cancelling", "run_requeued", "run_exploded"])
def test_events_without_a_counterpart_are_left_out(kind: str) -> None:
    assert seed_event(event(kind, {"attempt": 1})) is None


def test_run_started_carries_no_data() -> None:
    translated = wire(seed_event(event("run_started", {"attempt": 1, "worker": "w1"}, seq=2)))

    assert translated == {
        "id": "2-0",
        "run_id": str(RUN_ID),
        "created_at": AT,
        "type": "run_started",
        "data": {},
    }


def test_a_text_delta_is_a_part_delta_event_with_the_text_beside_it() -> None:
    translated = seed_event(event("agent_message_delta", {"delta": "Hello, wor"}))

    assert translated is not None
    parsed = EVENT.validate_json(dump(translated))
    assert parsed.model_dump(exclude_unset=True)["agent_message_delta"] == "Hello, wor"
    assert parsed.data == PartDeltaEvent(index=0, delta=TextPartDelta(content_delta="Hello, wor"))
    expected = STREAM_EVENT.dump_python(parsed.data, mode="json")
    assert translated.model_dump(mode="json")["data"] == expected


def test_a_tool_call_is_a_function_tool_call_event() -> None:
    data = {"tool_call_id": "call-1", "tool_name": "lookup", "args": {"city": "Oslo"}}

    translated = parse(seed_event(event("tool_call", data)))

    call = translated.data
    assert isinstance(call, FunctionToolCallEvent)
    assert (call.part.tool_call_id, call.part.tool_name, call.part.args) == (
        "call-1",
        "lookup",
        {"city": "Oslo"},
    )
    assert "agent_message_delta" not in translated.model_fields_set


def test_a_tool_result_is_a_function_tool_result_event_that_says_when_it_was_cut() -> None:
    whole = {
        "tool_call_id": "call-1",
        "tool_name": "lookup",
        "outcome": "failed",
        "content": "boom",
        "truncated": False,
    }
    cut = {**whole, "outcome": "success", "content": "x" * 10, "truncated": True}
    cut["content_chars"] = 25

    first = parse(seed_event(event("tool_result", whole))).data
    second = parse(seed_event(event("tool_result", cut))).data

    assert isinstance(first, FunctionToolResultEvent)
    assert (first.part.content, first.part.outcome, first.part.metadata) == ("boom", "failed", None)
    assert first.part.timestamp == AT
    assert isinstance(second, FunctionToolResultEvent)
    assert second.part.metadata == {"truncated": True, "content_chars": 25}


def test_a_tool_result_without_a_known_outcome_is_a_success() -> None:
    data = {"tool_call_id": "c", "tool_name": "t", "content": "ok"}

    result = parse(seed_event(event("tool_result", data))).data

    assert isinstance(result, FunctionToolResultEvent)
    assert result.part.outcome == "success"


def test_the_known_tool_outcomes_are_pydantic_ais() -> None:
    declared = get_type_hints(ToolReturnPart)["outcome"]

    assert set(get_args(ToolOutcome)) == set(get_args(declared))


def test_run_succeeded_keeps_output_snapshot_and_usage_in_the_seeds_shape() -> None:
    data = {
        "status": "succeeded",
        "output": {"answer": 42},
        "usage": {
            "requests": 2,
            "input_tokens": 30,
            "output_tokens": 12,
            "total_tokens": 42,
            "tool_calls": 1,
        },
        "attempt": 1,
        "session_snapshot": {"schema_version": 1, "layers": []},
    }
    ended = run(RunStatus.SUCCEEDED, started_at=AT, finished_at=AT + timedelta(seconds=1.5))

    translated = wire(seed_event(event("run_succeeded", data), ended))

    assert translated["type"] == "run_succeeded"
    assert set(translated["data"]) == {"output", "session_snapshot", "usage"}
    assert translated["data"]["output"] == {"answer": 42}
    usage = translated["data"]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        30,
        12,
        42,
    )
    assert usage["total_price"] == 0 and usage["currency"] == "USD"
    assert usage["latency"] == 1.5
    assert "time_to_first_token" not in usage


def test_a_null_output_is_still_the_output() -> None:
    data = {"status": "succeeded", "output": None, "usage": None, "session_snapshot": None}

    translated = wire(seed_event(event("run_succeeded", data)))

    assert translated["data"] == {"output": None, "session_snapshot": None}


@pytest.mark.parametrize(
    "pending",
    [
        {"deferred_tool_call": {"tool_call_id": "c1", "tool_name": "ask_human", "args": {"q": 1}}},
        {
            "deferred_tool_calls": [
                {"tool_call_id": "c1", "tool_name": "ask_human", "args": {"q": 1}},
                {"tool_call_id": "c2", "tool_name": "approve", "args": {}},
            ]
        },
    ],
    ids=["one call", "a list of calls"],
)
def test_a_paused_run_succeeds_with_its_first_deferred_call(pending: dict[str, Any]) -> None:
    data = {"status": "paused", **pending, "usage": None, "session_snapshot": {"layers": []}}

    translated = wire(seed_event(event("run_paused", data)))

    assert translated["type"] == "run_succeeded"
    assert translated["data"] == {
        "deferred_tool_call": {
            "tool_call_id": "c1",
            "tool_name": "ask_human",
            "args": {"q": 1},
            "metadata": {},
        },
        "session_snapshot": {"layers": []},
    }
    RunSucceededData.model_validate(translated["data"])


def test_run_failed_and_run_cancelled_keep_only_the_protocols_fields() -> None:
    failed = {
        "status": "failed",
        "error": "HTTP 500 from the provider",
        "error_type": "model_error",
        "reason": "http_500",
        "usage": None,
        "attempt": 1,
        "session_snapshot": None,
    }
    cancelled = {**failed, "status": "cancelled", "error": "Stopped.", "reason": "cancel_requested"}

    assert wire(seed_event(event("run_failed", failed)))["data"] == {
        "error": "HTTP 500 from the provider",
        "reason": "http_500",
    }
    assert wire(seed_event(event("run_cancelled", cancelled)))["data"] == {
        "reason": "cancel_requested",
        "message": "Stopped.",
    }


# --- errors -----------------------------------------------------------------------------------


def test_a_domain_validation_error_is_one_fastapi_style_item() -> None:
    body = detail_body(
        422,
        "unknown_layer_type",
        "layer 'llm': unknown type 'dify.plugin.llm'",
        {"layer": "llm", "field": "composition.layers"},
    )

    assert body == {
        "detail": [
            {
                "type": "unknown_layer_type",
                "loc": ["body", "composition", "layers"],
                "msg": "layer 'llm': unknown type 'dify.plugin.llm'",
                "ctx": {"layer": "llm", "field": "composition.layers"},
            }
        ]
    }


def test_schema_errors_stay_a_list_and_other_errors_are_a_message() -> None:
    schema_errors = {"errors": [{"loc": ["body", "x"], "msg": "extra", "type": "extra_forbidden"}]}

    assert detail_body(422, "request_invalid", "bad", schema_errors) == {
        "detail": [{"type": "extra_forbidden", "loc": ["body", "x"], "msg": "extra"}]
    }
    assert detail_body(422, "invalid_characters", "NUL", {"location": ["query", "q"]}) == {
        "detail": [
            {
                "type": "invalid_characters",
                "loc": ["query", "q"],
                "msg": "NUL",
                "ctx": {"location": ["query", "q"]},
            }
        ]
    }
    assert detail_body(409, "run_already_finished", "the run already succeeded") == {
        "detail": "the run already succeeded"
    }
    assert detail_body(422, "snapshot_required", "needs a snapshot") == {
        "detail": [{"type": "snapshot_required", "loc": ["body"], "msg": "needs a snapshot"}]
    }
