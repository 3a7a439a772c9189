"""The SSE event stream over real HTTP: order, closing, resuming, keep-alives, reconnects."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx2
import pytest

from app.client import TERMINAL_EVENT_TYPES, StrataAPIError, StrataClient, StrataStreamError
from app.models import RunStatus
from app.runs.schemas import RunEventRead
from tests.client.support import (
    BASIC,
    LONG_REPLY,
    STREAMING,
    frame_event,
    read_frames,
    seqs,
    slow,
)
from tests.client.transports import BreakingTransport, Cut
from tests.server_fixtures import LiveServer, LiveServerFactory


def stream_url(server: LiveServer, run_id: object) -> str:
    return f"{server.base_url}/v1/runs/{run_id}/events/stream"


def all_events(client: StrataClient, run_id: uuid.UUID) -> list[RunEventRead]:
    page = client.list_events(run_id, limit=500)
    assert page.terminal
    return page.items


def assert_complete_log(events: list[RunEventRead]) -> None:
    """1, 2, 3… without gaps, one terminal event, and it is the last."""
    assert seqs(events) == list(range(1, len(events) + 1))
    assert [event.type in TERMINAL_EVENT_TYPES for event in events].count(True) == 1
    assert events[-1].type in TERMINAL_EVENT_TYPES


def raw_stream(
    server: LiveServer, run_id: object, *, headers: dict[str, str] | None = None, **params: Any
) -> Any:
    return httpx2.stream(
        "GET",
        stream_url(server, run_id),
        params=params,
        headers={**server.headers(), **(headers or {})},
        timeout=10.0,
    )


def test_a_live_stream_is_ordered_gap_free_and_closes_after_the_terminal_event(
    live_server: LiveServer,
) -> None:
    client = live_server.client()
    run = client.create_run(STREAMING)

    with raw_stream(live_server, run.id) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        # Reading to the end returns only because the server closes the body after the
        # terminal event (a silent open stream would hit the 10 s read timeout instead).
        events = [frame_event(frame) for frame in read_frames(response) if frame.data]

    assert_complete_log(events)
    assert events[-1].type == "run_succeeded"
    assert events == all_events(client, run.id)
    assert client.get_run(run.id).status is RunStatus.SUCCEEDED


def test_streamed_text_deltas_add_up_to_the_reply(
    live_server_factory: LiveServerFactory,
) -> None:
    # Every chunk is written as it comes (flush at 1 char), so each one is its own event.
    server = live_server_factory(event_text_flush_chars=1)
    client = server.client()
    run = client.create_run(STREAMING)
    events = list(client.iter_events(run.id))
    assert_complete_log(events)
    deltas = [event.data["delta"] for event in events if event.type == "agent_message_delta"]
    assert len(deltas) == len(range(0, len(LONG_REPLY), 4))
    assert "".join(deltas) == LONG_REPLY


def test_coalesced_text_deltas_are_never_lost_to_the_terminal_event(
    live_server_factory: LiveServerFactory,
) -> None:
    # The default timer-based coalescing: the last delta write may still be in flight when the
    # run ends; the runner's final flush waits for it, so the text is complete every time.
    server = live_server_factory(event_text_flush_seconds=0.001)
    client = server.client()
    for _ in range(15):
        run = client.create_run(STREAMING)
        events = list(client.iter_events(run.id))
        assert_complete_log(events)
        text = "".join(e.data["delta"] for e in events if e.type == "agent_message_delta")
        assert text == LONG_REPLY


def test_the_client_streams_a_live_run_to_its_terminal_event(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.create_run(STREAMING)
    events = list(client.iter_events(run.id))
    assert_complete_log(events)
    assert events == all_events(client, run.id)


def test_resuming_a_dropped_stream_with_last_event_id_loses_and_repeats_nothing(
    live_server: LiveServer,
) -> None:
    client = live_server.client()
    run = client.create_run(STREAMING)

    seen: list[RunEventRead] = []
    with raw_stream(live_server, run.id) as response:
        for frame in read_frames(response):
            if frame.data:
                seen.append(frame_event(frame))
            if len(seen) == 2:
                break  # leaving the block closes the connection mid-stream
    assert client.get_run(run.id).finished_at is None, "the run ended before the drop"

    headers = {"Last-Event-ID": str(seen[-1].seq)}
    with raw_stream(live_server, run.id, headers=headers) as response:
        rest = [frame_event(frame) for frame in read_frames(response) if frame.data]

    assert rest[0].seq == seen[-1].seq + 1
    assert_complete_log(seen + rest)
    assert seen + rest == all_events(client, run.id)


def test_the_client_resumes_where_a_dropped_stream_stopped(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.create_run(STREAMING)
    first = []
    for event in client.iter_events(run.id):
        first.append(event)
        if len(first) == 2:
            break
    rest = list(client.iter_events(run.id, after=first[-1].seq))
    assert first + rest == all_events(client, run.id)


@pytest.mark.parametrize("cut", ["eof", "error"])
def test_the_client_reconnects_by_itself_after_a_broken_stream(
    live_server: LiveServer, cut: Cut
) -> None:
    transport = BreakingTransport(cut_streams=2, frames_before_cut=1, cut=cut)
    client = live_server.client(transport=transport)
    run = client.create_run(STREAMING)

    events = list(client.iter_events(run.id, reconnect_delay_seconds=0.05))

    assert_complete_log(events)
    assert events == all_events(client, run.id)
    # Each cut stream delivered one whole frame and a piece of the next; the piece is dropped
    # and the reconnect asks for what follows the last whole event.
    assert transport.plan.last_event_ids == [None, "1", "2"]


def test_the_client_retries_a_5xx_before_the_stream(live_server: LiveServer) -> None:
    transport = BreakingTransport(fail_streams=2)
    client = live_server.client(transport=transport)
    run = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)

    events = list(client.iter_events(run.id, reconnect_delay_seconds=0.01))

    assert events == all_events(client, run.id)
    assert len(transport.plan.stream_requests) == 3


def test_the_client_gives_up_after_max_reconnects_without_progress(
    live_server: LiveServer,
) -> None:
    transport = BreakingTransport(fail_streams=-1)
    client = live_server.client(transport=transport)
    run = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)

    with pytest.raises(StrataStreamError) as caught:
        list(client.iter_events(run.id, max_reconnects=2, reconnect_delay_seconds=0.01))

    assert len(transport.plan.stream_requests) == 3
    assert caught.value.last_seq == 0
    assert isinstance(caught.value.__cause__, StrataAPIError)
    assert caught.value.__cause__.status_code == 503


def test_a_4xx_on_the_stream_is_raised_without_a_retry(live_server: LiveServer) -> None:
    transport = BreakingTransport()
    with pytest.raises(StrataAPIError) as caught:
        list(live_server.client(transport=transport).iter_events(uuid.uuid4()))
    assert (caught.value.status_code, caught.value.code) == (404, "run_not_found")

    with pytest.raises(StrataAPIError) as caught:
        list(live_server.client(key="sk-wrong", transport=transport).iter_events(uuid.uuid4()))
    assert (caught.value.status_code, caught.value.code) == (401, "invalid_api_key")
    assert len(transport.plan.stream_requests) == 2


def test_an_unknown_run_is_a_404_before_any_stream(live_server: LiveServer) -> None:
    with raw_stream(live_server, uuid.uuid4()) as response:
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        response.read()
    assert response.json()["error"]["code"] == "run_not_found"


def test_the_after_query_wins_over_last_event_id(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)
    everything = all_events(client, run.id)

    with raw_stream(live_server, run.id, headers={"Last-Event-ID": "1"}, after=2) as response:
        events = [frame_event(frame) for frame in read_frames(response) if frame.data]
    assert events == everything[2:]

    with raw_stream(live_server, run.id, headers={"Last-Event-ID": "1"}) as response:
        events = [frame_event(frame) for frame in read_frames(response) if frame.data]
    assert events == everything[1:]


def test_a_stream_opened_after_the_run_ended_replays_everything_and_closes(
    live_server: LiveServer,
) -> None:
    client = live_server.client()
    run = client.wait_run(client.create_run(STREAMING).id, timeout_seconds=20)
    everything = all_events(client, run.id)

    with raw_stream(live_server, run.id) as response:
        events = [frame_event(frame) for frame in read_frames(response) if frame.data]
    assert events == everything
    assert list(client.iter_events(run.id)) == everything
    last_but_one = everything[-2].seq
    assert list(client.iter_events(run.id, after=last_but_one)) == everything[-1:]


def test_an_idle_stream_gets_keep_alive_comments(live_server_factory: LiveServerFactory) -> None:
    server = live_server_factory(sse_keepalive_seconds=0.2)
    client = server.client()
    run = client.create_run(slow(1.2))

    started = time.monotonic()
    with raw_stream(server, run.id) as response:
        lines = list(response.iter_lines())
    assert time.monotonic() - started >= 1.0

    comments = [line for line in lines if line.startswith(":")]
    assert len(comments) >= 2, lines
    assert client.wait_run(run.id, timeout_seconds=20).status is RunStatus.SUCCEEDED
    streamed = list(client.iter_events(run.id))
    assert streamed == all_events(client, run.id)


def test_a_malformed_last_event_id_is_a_400_before_any_stream(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)
    with raw_stream(live_server, run.id, headers={"Last-Event-ID": "abc"}) as response:
        assert response.status_code == 400
        response.read()
    assert response.json()["error"]["code"] == "invalid_last_event_id"


def test_a_stream_resumed_after_the_terminal_event_closes_at_once(
    live_server: LiveServer,
) -> None:
    client = live_server.client()
    run = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)
    terminal = all_events(client, run.id)[-1]
    with httpx2.stream(
        "GET",
        stream_url(live_server, run.id),
        params={"after": terminal.seq},
        headers=live_server.headers(),
        timeout=2.0,
    ) as response:
        assert response.status_code == 200
        assert [frame for frame in read_frames(response) if frame.data] == []
