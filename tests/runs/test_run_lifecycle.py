"""Runs end to end through HTTP: output, snapshots, resume, pause, cleanup, limits, failures."""

from __future__ import annotations

import copy

from tests.api_fixtures import Api
from tests.layer_types import RECORDS
from tests.runs.bodies import chat, layer, resumed


def _states(run: dict[str, object]) -> dict[str, str]:
    snapshot = run["session_snapshot"]
    assert isinstance(snapshot, dict)
    return {entry["name"]: entry["lifecycle_state"] for entry in snapshot["layers"]}


def test_a_run_succeeds_with_output_and_a_suspended_snapshot(api: Api) -> None:
    run = api.run_to_end(chat("hello"))

    assert run["status"] == "succeeded"
    assert run["output"] == "echo #1: hello"
    assert _states(run) == {"prompt": "suspended", "history": "suspended", "llm": "suspended"}
    assert run["usage"]["requests"] == 1
    assert run["error"] is None and run["finished_at"] is not None


def test_a_second_run_resumes_the_first_ones_history(api: Api) -> None:
    first = api.run_to_end(chat("hello"))
    second = api.run_to_end(resumed(chat("and again"), first["session_snapshot"]))

    assert second["status"] == "succeeded"
    assert second["output"] == "echo #2: and again"  # the model saw two user prompts
    history = next(
        entry for entry in second["session_snapshot"]["layers"] if entry["name"] == "history"
    )
    messages = history["runtime_state"]["messages"]
    assert len(messages) == 4
    # run instructions (system prompts) are never stored in the history
    assert all(message.get("instructions") is None for message in messages)


def test_delete_on_exit_closes_the_snapshot_and_it_cannot_be_resumed(api: Api) -> None:
    run = api.run_to_end(chat(on_exit={"default": "delete"}))
    assert set(_states(run).values()) == {"closed"}

    response = api.post_run(resumed(chat(), run["session_snapshot"]))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "snapshot_layer_closed"
    assert response.json()["error"]["details"]["field"] == "session_snapshot"


def test_on_exit_can_delete_one_layer_and_suspend_the_rest(api: Api) -> None:
    run = api.run_to_end(chat(on_exit={"default": "suspend", "layers": {"prompt": "delete"}}))

    assert _states(run) == {"prompt": "closed", "history": "suspended", "llm": "suspended"}


def test_ask_human_pauses_and_deferred_results_complete_the_run(api: Api) -> None:
    body = chat("book a table")
    body["composition"]["layers"].insert(2, layer("ask_human", "ask_human"))
    body["composition"]["layers"][3]["config"] = {"call_tools": ["ask_human"], "reply": "booked"}

    paused = api.run_to_end(body)

    assert paused["status"] == "paused"
    call = paused["deferred_tool_call"]
    assert call["tool_name"] == "ask_human"
    assert call["args"]["question"]
    assert paused["output"] is None
    assert set(_states(paused).values()) == {"suspended"}

    answer = {"calls": {call["tool_call_id"]: "for two at eight"}}
    done = api.run_to_end(resumed(body, paused["session_snapshot"], deferred_tool_results=answer))

    assert done["status"] == "succeeded", done
    assert done["output"] == "booked"
    history = next(e for e in done["session_snapshot"]["layers"] if e["name"] == "history")
    returns = [
        part
        for message in history["runtime_state"]["messages"]
        for part in message["parts"]
        if part.get("part_kind") == "tool-return"
    ]
    assert [part["content"] for part in returns] == ["for two at eight"]


def test_the_output_layer_returns_json_that_fits_the_schema(api: Api) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    body = chat("plan a trip")
    body["composition"]["layers"][2]["config"] = {"reply": '{"city": "Lisbon", "days": 3}'}
    body["composition"]["layers"].append(
        layer("output", "output.json_schema", {"json_schema": schema})
    )

    run = api.run_to_end(body)

    assert run["status"] == "succeeded", run
    assert run["output"] == {"city": "Lisbon", "days": 3}


def test_an_output_that_does_not_fit_the_schema_fails_the_run(api: Api) -> None:
    schema = {"type": "object", "properties": {"days": {"type": "integer"}}, "required": ["days"]}
    body = chat("plan")
    body["composition"]["layers"][2]["config"] = {"reply": '{"days": "many"}'}
    body["composition"]["layers"].append(
        layer("output", "output.json_schema", {"json_schema": schema})
    )

    run = api.run_to_end(body)

    assert run["status"] == "failed"
    assert run["error_type"] == "model_error"


def test_a_cleanup_run_calls_every_delete_hook_once_and_closes_the_snapshot(api: Api) -> None:
    label = "cleanup-1"
    RECORDS.pop(label, None)
    body = chat()
    body["composition"]["layers"].insert(1, layer("rec", "test.recording", {"label": label}))
    first = api.run_to_end(body)
    assert RECORDS[label] == ["open", "create", "suspend", "close"]

    cleanup = copy.deepcopy(body)
    cleanup["composition"]["layers"] = [
        spec for spec in cleanup["composition"]["layers"] if spec["name"] != "llm"
    ]
    snapshot = copy.deepcopy(first["session_snapshot"])
    snapshot["layers"] = [entry for entry in snapshot["layers"] if entry["name"] != "llm"]
    done = api.run_to_end({**cleanup, "purpose": "cleanup", "session_snapshot": snapshot})

    assert done["status"] == "succeeded", done
    assert done["output"] is None
    assert set(_states(done).values()) == {"closed"}
    assert RECORDS[label][4:] == ["open", "resume", "delete", "close"]
    assert RECORDS[label].count("delete") == 1


def test_a_failing_delete_hook_fails_the_cleanup_without_a_snapshot(api: Api) -> None:
    label = "cleanup-fail"
    RECORDS.pop(label, None)
    spec = layer("rec", "test.recording", {"label": label, "fail_on": "delete"})
    snapshot = {
        "schema_version": 1,
        "layers": [{"name": "rec", "lifecycle_state": "suspended", "runtime_state": {}}],
    }
    run = api.run_to_end(
        {"composition": {"layers": [spec]}, "purpose": "cleanup", "session_snapshot": snapshot}
    )

    assert run["status"] == "failed"
    assert run["error_type"] == "layer_error"
    assert "delete failed on purpose" in run["error"]
    assert run["session_snapshot"] is None
    assert RECORDS[label] == ["open", "resume", "delete", "close"]


def test_a_failing_enter_hook_fails_the_run_and_exits_the_entered_layers(api: Api) -> None:
    before, failing = "enter-ok", "enter-fail"
    RECORDS.pop(before, None)
    RECORDS.pop(failing, None)
    body = chat()
    body["composition"]["layers"][1:1] = [
        layer("ok", "test.recording", {"label": before}),
        layer("bad", "test.recording", {"label": failing, "fail_on": "create"}),
    ]
    run = api.run_to_end(body)

    assert run["status"] == "failed"
    assert run["error_type"] == "layer_error"
    assert run["session_snapshot"] is None
    # on_exit applies once every layer is active; a failed enter exits with the default DELETE
    assert RECORDS[before] == ["open", "create", "delete", "close"]
    assert RECORDS[failing] == ["open", "create", "close"]


def test_the_model_request_budget_fails_the_run_with_run_limit_exceeded(api: Api) -> None:
    body = chat("weather?", llm={"call_tools": "all"}, limits={"max_model_requests": 1})
    body["composition"]["layers"].insert(2, layer("tools", "test.tools"))

    run = api.run_to_end(body)

    assert run["status"] == "failed"
    assert run["error_type"] == "run_limit_exceeded"
    assert run["reason"] == "model_request_budget"
    assert _states(run)["history"] == "suspended"  # layers exited cleanly: snapshot kept


def test_the_wall_clock_timeout_fails_the_run_with_run_limit_exceeded(api: Api) -> None:
    run = api.run_to_end(chat(llm={"latency_seconds": 5}, limits={"timeout_seconds": 0.2}))

    assert run["status"] == "failed"
    assert run["error_type"] == "run_limit_exceeded"
    assert run["reason"] == "timeout"


def test_request_limits_are_capped_by_the_server_maximums(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(run_max_timeout_seconds=0.2)
    run = api.run_to_end(chat(llm={"latency_seconds": 5}, limits={"timeout_seconds": 600}))

    assert run["error_type"] == "run_limit_exceeded"


def test_a_tool_call_round_trip_with_the_test_model(api: Api) -> None:
    body = chat(
        "weather in Oslo?",
        llm={
            "call_tools": ["lookup_weather"],
            "tool_args": {"lookup_weather": {"city": "Oslo"}},
            "reply": "It is sunny.",
        },
    )
    body["composition"]["layers"].insert(2, layer("tools", "test.tools"))

    run = api.run_to_end(body)

    assert run["status"] == "succeeded"
    assert run["output"] == "It is sunny."
    events = api.events(run["id"])
    calls = [e for e in events if e["type"] == "tool_call"]
    results = [e for e in events if e["type"] == "tool_result"]
    assert calls[0]["data"]["args"] == {"city": "Oslo"}
    assert results[0]["data"]["content"] == "sunny in Oslo"


def test_a_tool_error_with_a_long_class_name_fails_the_run_with_the_reason_cut(api: Api) -> None:
    # The reason is the exception's class name; its column holds 64 characters, and PostgreSQL
    # refused the terminal write of a longer one on every retry (the run stayed running).
    body = chat(
        "forecast for Oslo?",
        llm={"call_tools": ["break_forecast"], "tool_args": {"break_forecast": {"city": "Oslo"}}},
    )
    body["composition"]["layers"].insert(2, layer("tools", "test.broken_tools"))

    run = api.run_to_end(body)

    assert run["status"] == "failed", run
    assert run["error_type"] == "tool_error"
    name = "AForecastServiceFailureWhoseClassNameIsLongerThanTheReasonColumnHolds"
    assert run["reason"] == name[:64]
    assert name in run["error"]  # the whole name stays in the message
    terminal = [e for e in api.events(run["id"]) if e["type"] == "run_failed"]
    assert [e["data"]["reason"] for e in terminal] == [name[:64]]
