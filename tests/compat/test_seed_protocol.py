"""The seed protocol on `/compat/agent-backend`, driven the way the seed's client drives it.

Every answer is parsed with the strict models of `tests.compat.protocol` (written from the
protocol document; unknown fields fail). Streams are read from a real uvicorn server.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx2
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    TextPartDelta,
)

from app.models import ApiKeyRole
from tests.api_fixtures import Api, ApiFactory, create_key
from tests.compat.protocol import (
    CancelRunResponse,
    Event,
    PydanticAIEvent,
    RunCancelledEvent,
    RunFailedEvent,
    RunStartedEvent,
    RunSucceededEvent,
)
from tests.compat.support import (
    PREFIX,
    SeedClient,
    error_of,
    frame_event,
    read_frames,
    seq_of,
    stream,
)
from tests.runs.bodies import chat, layer, resumed
from tests.server_fixtures import LiveServer, LiveServerFactory

LONG_REPLY = " ".join(f"word{index}" for index in range(60))


def seed(api: Api, key: str | None = None) -> SeedClient:
    return SeedClient(api.client, key or api.key)


def live_seed(server: LiveServer) -> tuple[SeedClient, httpx2.Client]:
    http = httpx2.Client(base_url=server.base_url, timeout=10.0)
    return SeedClient(http, server.key), http


def succeeded(events: list[Event]) -> RunSucceededEvent:
    last = events[-1]
    assert isinstance(last, RunSucceededEvent), last
    return last


def text_of(events: list[Event]) -> str:
    return "".join(
        event.agent_message_delta or ""
        for event in events
        if isinstance(event, PydanticAIEvent) and event.agent_message_delta is not None
    )


def without_times(events: list[Event]) -> list[dict[str, Any]]:
    """Events without `created_at`: a live event's timestamp is taken a moment after the stored
    one's (`app.runs.manager._append` stamps the hand-off separately), so the same event read
    live and from the log may differ there by milliseconds."""
    return [event.model_dump(exclude={"created_at"}) for event in events]


def assert_complete(events: list[Event]) -> None:
    """Increasing `<seq>-0` cursors, `run_started` first, exactly one terminal event, last."""
    seqs = [seq_of(event) for event in events]
    assert seqs == sorted(set(seqs))
    assert isinstance(events[0], RunStartedEvent)
    terminal = [e for e in events if e.type in ("run_succeeded", "run_failed", "run_cancelled")]
    assert terminal == [events[-1]]


# --- create, stream, resume -------------------------------------------------------------------


def test_a_run_streams_its_text_and_succeeds_with_a_snapshot_and_usage(
    live_server: LiveServer,
) -> None:
    client, http = live_seed(live_server)
    with http:
        created = client.create(chat(llm={"reply": LONG_REPLY, "stream_chunk_chars": 5}))
        assert created.status == "running"

        with stream(live_server.base_url, live_server.key, created.run_id) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [frame_event(frame) for frame in read_frames(response) if frame.data]

        status = client.status(created.run_id)
        page = client.all_events(created.run_id)

    assert_complete(events)
    assert without_times(events) == without_times(page)
    assert {event.run_id for event in events} == {created.run_id}
    deltas = [e for e in events if isinstance(e, PydanticAIEvent)]
    assert deltas and all(isinstance(e.data, PartDeltaEvent) for e in deltas)
    assert all(
        isinstance(e.data.delta, TextPartDelta)
        and e.data.delta.content_delta == e.agent_message_delta
        for e in deltas
        if isinstance(e.data, PartDeltaEvent)
    )
    assert text_of(events) == LONG_REPLY
    done = succeeded(events).data
    assert done.output == LONG_REPLY
    assert done.deferred_tool_call is None
    assert done.session_snapshot is not None
    assert [entry["name"] for entry in done.session_snapshot["layers"]] == [
        "prompt",
        "history",
        "llm",
    ]
    assert done.usage is not None
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens > 0
    assert done.usage.total_price == 0 and done.usage.currency == "USD"
    assert done.usage.latency >= 0
    assert status.status == "succeeded" and status.error is None
    assert status.updated_at >= status.created_at


def test_a_second_run_with_the_snapshot_continues_the_conversation(api: Api) -> None:
    client = seed(api)
    first = client.create(chat("What is Strata?"))
    assert client.wait(first.run_id).status == "succeeded"
    snapshot = succeeded(client.all_events(first.run_id)).data.session_snapshot
    assert snapshot is not None

    second = client.create(resumed(chat("What did I ask before?"), snapshot))

    assert client.wait(second.run_id).status == "succeeded"
    assert succeeded(client.all_events(second.run_id)).data.output == (
        "echo #2: What did I ask before?"
    )


def test_ask_human_succeeds_with_the_deferred_call_and_its_answer_completes_the_run(
    api: Api,
) -> None:
    client = seed(api)
    body = chat("book a table")
    body["composition"]["layers"].insert(2, layer("ask_human", "ask_human"))
    body["composition"]["layers"][3]["config"] = {"call_tools": ["ask_human"], "reply": "booked"}

    paused = client.create(body)
    assert client.wait(paused.run_id).status == "succeeded"
    stopped = succeeded(client.all_events(paused.run_id)).data
    assert "output" not in stopped.model_fields_set
    call = stopped.deferred_tool_call
    assert call is not None and call.tool_name == "ask_human"
    assert call.args["question"]
    assert call.metadata["layer_type"] == "ask_human"
    assert stopped.session_snapshot is not None

    answer = {"calls": {call.tool_call_id: "for two at eight"}}
    done = client.create(resumed(body, stopped.session_snapshot, deferred_tool_results=answer))

    assert client.wait(done.run_id).status == "succeeded"
    events = client.all_events(done.run_id)
    assert succeeded(events).data.output == "booked"
    assert succeeded(events).data.deferred_tool_call is None
    v1 = api.client.get(f"/v1/runs/{paused.run_id}", headers=api.headers()).json()
    assert v1["status"] == "paused"  # the seed's `succeeded` is Strata's `paused`


def test_tool_calls_and_results_stream_as_pydantic_ai_function_tool_events(api: Api) -> None:
    client = seed(api)
    body = chat("weather?")
    body["composition"]["layers"].insert(2, layer("tools", "test.tools"))
    body["composition"]["layers"][3]["config"] = {
        "call_tools": ["lookup_weather"],
        "tool_args": {"lookup_weather": {"city": "Oslo"}},
        "reply": "it is sunny",
    }

    run = client.create(body)
    assert client.wait(run.run_id).status == "succeeded"
    events = client.all_events(run.run_id)

    stream_events = [e.data for e in events if isinstance(e, PydanticAIEvent)]
    calls = [e for e in stream_events if isinstance(e, FunctionToolCallEvent)]
    results = [e for e in stream_events if isinstance(e, FunctionToolResultEvent)]
    assert [(c.part.tool_name, c.part.args) for c in calls] == [
        ("lookup_weather", {"city": "Oslo"})
    ]
    assert [(r.part.tool_name, r.part.content, r.part.outcome) for r in results] == [
        ("lookup_weather", "sunny in Oslo", "success")
    ]
    assert results[0].part.tool_call_id == calls[0].part.tool_call_id
    tool_envelopes = [
        e
        for e in events
        if isinstance(e, PydanticAIEvent) and not isinstance(e.data, PartDeltaEvent)
    ]
    assert all("agent_message_delta" not in e.model_fields_set for e in tool_envelopes)
    assert succeeded(events).data.output == "it is sunny"


def test_a_failed_run_ends_with_run_failed_and_its_error(api: Api) -> None:
    client = seed(api)
    body = chat()
    del body["composition"]["layers"][0]["config"]["user"]  # no user prompt: the run fails

    run = client.create(body)
    status = client.wait(run.run_id)
    events = client.all_events(run.run_id)

    assert status.status == "failed"
    assert status.error
    last = events[-1]
    assert isinstance(last, RunFailedEvent)
    assert last.data.error == status.error
    assert last.data.reason == "empty_user_prompt"


# --- cancel -----------------------------------------------------------------------------------


def test_cancelling_a_running_run_answers_cancelled_and_ends_its_stream_with_run_cancelled(
    live_server: LiveServer,
) -> None:
    client, http = live_seed(live_server)
    with http:
        run = client.create(chat(llm={"latency_seconds": 30}))
        seen: list[Event] = []
        with stream(live_server.base_url, live_server.key, run.run_id) as response:
            for frame in read_frames(response):
                if not frame.data:
                    continue
                seen.append(frame_event(frame))
                if isinstance(seen[-1], RunStartedEvent):
                    cancelled = client.cancel(run.run_id, "user_requested", "Stopped by the user")
                    assert cancelled.status_code == 200, cancelled.text
                    assert (
                        CancelRunResponse.model_validate_json(cancelled.text).run_id == run.run_id
                    )
        again = client.cancel(run.run_id, None, None)
        status = client.status(run.run_id)

    assert_complete(seen)
    last = seen[-1]
    assert isinstance(last, RunCancelledEvent)
    assert last.data.reason == "cancel_requested"
    assert last.data.message == "user_requested: Stopped by the user"
    assert again.status_code == 200
    assert CancelRunResponse.model_validate_json(again.text).status == "cancelled"
    assert status.status == "cancelled"
    assert status.error == "user_requested: Stopped by the user"


def test_cancelling_a_queued_run_with_only_a_message_keeps_the_message(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(run_worker=False)
    client = seed(api)
    run = client.create(chat())

    response = client.cancel(run.run_id, None, "not needed any more")

    assert CancelRunResponse.model_validate_json(response.text).status == "cancelled"
    last = client.all_events(run.run_id)[-1]
    assert isinstance(last, RunCancelledEvent)
    assert last.data.message == "not needed any more"
    assert [type(e) for e in client.all_events(run.run_id)] == [RunCancelledEvent]


def test_cancelling_a_finished_run_is_409(api: Api) -> None:
    client = seed(api)
    run = client.create(chat())
    client.wait(run.run_id)

    refused = client.cancel(run.run_id, "late", None)

    assert isinstance(error_of(refused, 409).detail, str)
    assert client.status(run.run_id).status == "succeeded"


def test_a_cancel_body_with_an_unknown_field_is_422(api: Api) -> None:
    client = seed(api)
    run = client.create(chat())

    response = api.client.post(
        f"{PREFIX}/runs/{run.run_id}/cancel",
        json={"reason": None, "message": None, "force": True},
        headers=api.headers(),
    )

    detail = error_of(response, 422).detail
    assert isinstance(detail, list)
    assert detail[0]["type"] == "extra_forbidden" and detail[0]["loc"] == ["body", "force"]


# --- events: paging and resuming --------------------------------------------------------------


def test_events_page_from_0_0_to_the_end_without_gaps_or_repeats(api_factory: ApiFactory) -> None:
    api = api_factory(event_text_flush_chars=1)  # every streamed chunk is its own event
    client = seed(api)
    run = client.create(chat(llm={"reply": LONG_REPLY, "stream_chunk_chars": 40}))
    client.wait(run.run_id)

    paged = client.all_events(run.run_id, limit=2)
    whole = client.page(run.run_id, limit=500)
    after_the_end = client.page(run.run_id, after=paged[-1].id or "", limit=10)
    v1 = api.client.get(f"/v1/runs/{run.run_id}/events", headers=api.headers()).json()

    assert_complete(paged)
    assert paged == whole.events
    assert whole.next_cursor is None
    assert len(paged) >= 4
    assert text_of(paged) == LONG_REPLY
    assert after_the_end.events == [] and after_the_end.next_cursor is None
    assert v1["items"][0]["type"] == "run_queued"  # left out of the protocol
    assert seq_of(paged[0]) == 2


def test_a_page_of_a_running_run_returns_a_cursor_to_continue_from(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(run_worker=False)  # the run stays queued
    client = seed(api)
    run = client.create(chat())

    page = client.page(run.run_id)

    assert page.events == []
    assert page.next_cursor == "1-0"  # past run_queued, which the protocol does not have
    assert client.page(run.run_id, after="1-0").next_cursor == "1-0"


def test_a_stream_cut_mid_run_resumes_with_last_event_id_exactly_where_it_stopped(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(event_text_flush_chars=1)
    client, http = live_seed(server)
    with http:
        run = client.create(
            chat(llm={"reply": LONG_REPLY, "stream_chunk_chars": 4, "latency_seconds": 0.3})
        )
        seen: list[Event] = []
        with stream(server.base_url, server.key, run.run_id) as response:
            for frame in read_frames(response):
                if frame.data:
                    seen.append(frame_event(frame))
                if len(seen) == 2:
                    break  # leaving the block drops the connection mid-stream
        assert client.status(run.run_id).status == "running", "the run ended before the cut"

        headers = {"Last-Event-ID": seen[-1].id or ""}
        with stream(server.base_url, server.key, run.run_id, headers=headers) as response:
            rest = [frame_event(frame) for frame in read_frames(response) if frame.data]
        page = client.all_events(run.run_id)

    assert seq_of(rest[0]) == seq_of(seen[-1]) + 1
    assert without_times(seen + rest) == without_times(page)
    assert_complete(seen + rest)
    assert text_of(seen + rest) == LONG_REPLY


def test_the_after_query_wins_over_last_event_id_and_a_bad_cursor_is_422(
    live_server: LiveServer,
) -> None:
    client, http = live_seed(live_server)
    with http:
        run = client.create(chat())
        client.wait(run.run_id)
        events = client.all_events(run.run_id)
        headers = {"Last-Event-ID": "0-0"}
        with stream(
            live_server.base_url, live_server.key, run.run_id, headers, after=events[-2].id
        ) as response:
            rest = [frame_event(frame) for frame in read_frames(response) if frame.data]
        with stream(
            live_server.base_url, live_server.key, run.run_id, {"Last-Event-ID": "banana"}
        ) as response:
            response.read()
            bad_header = response
        bad_query = http.get(
            f"{PREFIX}/runs/{run.run_id}/events",
            params={"after": "7"},
            headers=client.headers,
        )

    assert without_times(rest) == without_times(events[-1:])
    detail = error_of(bad_header, 422).detail
    assert isinstance(detail, list)
    assert detail[0]["type"] == "invalid_cursor"
    assert detail[0]["loc"] == ["header", "Last-Event-ID"]
    assert error_of(bad_query, 422).detail


# --- validation -------------------------------------------------------------------------------


def test_a_layer_type_strata_does_not_serve_is_422_and_stores_nothing(api: Api) -> None:
    body = chat()
    body["composition"]["layers"][2] = layer(
        "llm", "dify.plugin.llm", {"provider": "openai", "model": "gpt"}
    )

    response = api.client.post(f"{PREFIX}/runs", json=body, headers=api.headers())

    detail = error_of(response, 422).detail
    assert isinstance(detail, list) and len(detail) == 1
    assert detail[0]["type"] == "unknown_layer_type"
    assert "dify.plugin.llm" in detail[0]["msg"]
    assert detail[0]["loc"][0] == "body"
    assert detail[0]["ctx"]["layer"] == "llm"
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_a_body_with_a_field_the_protocol_does_not_have_is_422(api: Api) -> None:
    for extra in ({"purpose": "cleanup"}, {"session": None}, {"limits": {}}):
        body = {**chat(), **extra}
        response = api.client.post(f"{PREFIX}/runs", json=body, headers=api.headers())
        detail = error_of(response, 422).detail
        assert isinstance(detail, list)
        assert detail[0]["type"] == "extra_forbidden", detail
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_a_snapshot_that_does_not_fit_the_composition_is_a_precise_422(api: Api) -> None:
    client = seed(api)
    first = client.create(chat())
    client.wait(first.run_id)
    snapshot = succeeded(client.all_events(first.run_id)).data.session_snapshot
    assert snapshot is not None
    body = chat()
    body["composition"]["layers"].pop(1)  # no history layer any more

    response = api.client.post(
        f"{PREFIX}/runs", json=resumed(body, snapshot), headers=api.headers()
    )

    detail = error_of(response, 422).detail
    assert isinstance(detail, list)
    assert detail[0]["type"] == "snapshot_layers_mismatch"
    assert detail[0]["loc"][0] == "body"


def test_text_no_database_can_store_is_422_in_the_protocol_shape(api: Api) -> None:
    body = {**chat(), "metadata": {"note": "a\u0000b"}}

    response = api.client.post(f"{PREFIX}/runs", json=body, headers=api.headers())

    detail = error_of(response, 422).detail
    assert isinstance(detail, list)
    assert detail[0]["type"] == "invalid_characters"
    assert detail[0]["loc"] == ["body", "metadata", "note"]


def test_a_body_over_the_size_cap_is_413_in_the_protocol_shape(api_factory: ApiFactory) -> None:
    api = api_factory(max_body_bytes=2048)
    body = {**chat(), "metadata": {"note": "x" * 4096}}

    response = api.client.post(f"{PREFIX}/runs", json=body, headers=api.headers())

    assert isinstance(error_of(response, 413).detail, str)


# --- one set of runs, keys and roles ----------------------------------------------------------


def test_runs_are_shared_with_v1_both_ways(api: Api) -> None:
    client = seed(api)
    through_compat = client.create(chat("from the seed client"))
    client.wait(through_compat.run_id)
    through_v1 = api.run_to_end(chat("from v1"))

    read_by_v1 = api.client.get(f"/v1/runs/{through_compat.run_id}", headers=api.headers())
    read_by_compat = client.status(through_v1["id"])

    assert read_by_v1.status_code == 200
    assert read_by_v1.json()["status"] == "succeeded"
    assert read_by_v1.json()["output"] == "echo #1: from the seed client"
    assert read_by_compat.status == "succeeded"
    assert succeeded(client.all_events(through_v1["id"])).data.output == "echo #1: from v1"


def test_the_same_idempotency_key_answers_the_same_run_and_another_body_is_409(
    api: Api,
) -> None:
    client = seed(api)
    body = chat(idempotency_key="node-7")

    first = client.create(body)
    again = client.create(copy.deepcopy(body))
    other = api.client.post(
        f"{PREFIX}/runs", json=chat("different", idempotency_key="node-7"), headers=api.headers()
    )

    assert again.run_id == first.run_id
    assert isinstance(error_of(other, 409).detail, str)


def test_auth_errors_are_401_and_403_in_the_protocol_shape(api: Api) -> None:
    client = seed(api)
    run = client.create(chat())
    reader = create_key(api.database_url, "t1", ApiKeyRole.READER).key
    as_reader = seed(api, reader)

    missing = api.client.get(f"{PREFIX}/runs/{run.run_id}")
    invalid = api.client.get(f"{PREFIX}/runs/{run.run_id}", headers=api.headers("sk-nope"))
    create_as_reader = api.client.post(f"{PREFIX}/runs", json=chat(), headers=as_reader.headers)
    cancel_as_reader = as_reader.cancel(run.run_id)

    assert isinstance(error_of(missing, 401).detail, str)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert isinstance(error_of(invalid, 401).detail, str)
    assert "runner" in str(error_of(create_as_reader, 403).detail)
    assert error_of(cancel_as_reader, 403)
    assert as_reader.status(run.run_id).run_id == run.run_id  # a reader reads
    assert as_reader.page(run.run_id).run_id == run.run_id


def test_another_tenants_run_and_an_unknown_id_are_404(api: Api) -> None:
    client = seed(api)
    run = client.create(chat())
    stranger = create_key(api.database_url, "t2").key
    headers = {"Authorization": f"Bearer {stranger}"}

    answers = [
        api.client.get(f"{PREFIX}/runs/{run.run_id}", headers=headers),
        api.client.get(f"{PREFIX}/runs/{run.run_id}/events", headers=headers),
        api.client.get(f"{PREFIX}/runs/{run.run_id}/events/sse", headers=headers),
        api.client.post(f"{PREFIX}/runs/{run.run_id}/cancel", json={}, headers=headers),
        api.client.get(f"{PREFIX}/runs/not-a-run-id", headers=api.headers()),
    ]

    for response in answers:
        assert isinstance(error_of(response, 404).detail, str)
    assert client.status(run.run_id).status in ("running", "succeeded")


def test_the_openapi_document_tags_the_protocol_and_documents_its_errors(api: Api) -> None:
    document: dict[str, Any] = api.client.get("/openapi.json").json()
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        if path.startswith(PREFIX)
        for method, operation in item.items()
    ]
    tag = "seed protocol (compat)"

    assert {(path, method) for path, method, _ in operations} == {
        (f"{PREFIX}/runs", "post"),
        (f"{PREFIX}/runs/{{run_id}}", "get"),
        (f"{PREFIX}/runs/{{run_id}}/cancel", "post"),
        (f"{PREFIX}/runs/{{run_id}}/events", "get"),
        (f"{PREFIX}/runs/{{run_id}}/events/sse", "get"),
    }
    assert tag in [item["name"] for item in document["tags"]]
    for _path, method, operation in operations:
        assert operation["tags"] == [tag]
        responses = operation["responses"]
        assert {"401", "422"} <= responses.keys()
        assert ("403" in responses) == (method == "post")
        schema = responses["401"]["content"]["application/json"]["schema"]["$ref"]
        assert schema.endswith("/SeedError")
