"""How `iter_events` treats what a server sends, with canned bodies (no server needed)."""

from __future__ import annotations

import json
import uuid

import httpx2
import pytest

from app.client import StrataClient, StrataStreamError

RUN_ID = uuid.UUID("01a200c2-0000-7000-8000-000000000001")


def frame(seq: int, event_type: str = "run_started", *, frame_id: str | None = None) -> str:
    data = {
        "seq": seq,
        "run_id": str(RUN_ID),
        "type": event_type,
        "data": {},
        "created_at": "2026-11-22T00:00:00Z",
    }
    return f"id: {frame_id or seq}\nevent: {event_type}\ndata: {json.dumps(data)}\n\n"


def client_serving(*bodies: str) -> tuple[StrataClient, list[httpx2.Request]]:
    """A client whose n-th stream request gets `bodies[n]` (the last one repeats)."""
    requests: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        body = bodies[min(len(requests), len(bodies)) - 1]
        return httpx2.Response(
            200, text=body, headers={"content-type": "text/event-stream; charset=utf-8"}
        )

    transport = httpx2.MockTransport(handle)
    return StrataClient("http://strata.test", "sk-test", transport=transport), requests


def events_of(client: StrataClient, max_reconnects: int = 3) -> list[tuple[int, str]]:
    events = client.iter_events(RUN_ID, max_reconnects=max_reconnects, reconnect_delay_seconds=0)
    return [(event.seq, event.type) for event in events]


def test_comments_are_skipped_and_the_stream_stops_at_the_terminal_event() -> None:
    body = ": keep-alive\n\n" + frame(1) + ":\n\n" + frame(2, "run_failed") + frame(3)
    client, requests = client_serving(body)
    assert events_of(client) == [(1, "run_started"), (2, "run_failed")]
    assert len(requests) == 1
    assert requests[0].headers["authorization"] == "Bearer sk-test"
    assert "last-event-id" not in requests[0].headers


def test_a_premature_end_reconnects_from_the_last_event_and_drops_repeats() -> None:
    client, requests = client_serving(
        frame(1) + frame(2) + "data: {cut",
        frame(2) + frame(3) + frame(4, "run_succeeded"),
    )
    assert [seq for seq, _ in events_of(client)] == [1, 2, 3, 4]
    assert [request.headers.get("last-event-id") for request in requests] == [None, "2"]


def test_after_is_sent_as_last_event_id() -> None:
    client, requests = client_serving(frame(6, "run_cancelled"))
    assert [event.seq for event in client.iter_events(RUN_ID, after=5)] == [6]
    assert requests[0].headers["last-event-id"] == "5"
    assert "after" not in requests[0].url.params


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (frame(1) + frame(3), "event 2 is missing"),
        (frame(1, frame_id="9"), "does not match"),
        ("data: not json\n\n", "not a run event"),
    ],
)
def test_a_stream_that_breaks_the_protocol_fails_without_reconnecting(
    body: str, message: str
) -> None:
    client, requests = client_serving(body)
    with pytest.raises(StrataStreamError, match=message):
        events_of(client)
    assert len(requests) == 1


def test_a_reply_that_is_not_an_event_stream_is_a_stream_error() -> None:
    transport = httpx2.MockTransport(lambda _request: httpx2.Response(200, json={"items": []}))
    client = StrataClient("http://strata.test", "sk-test", transport=transport)
    with pytest.raises(StrataStreamError, match="expected text/event-stream"):
        list(client.iter_events(RUN_ID))


def test_streams_that_keep_ending_early_without_progress_give_up() -> None:
    client, requests = client_serving(frame(1) + frame(2), ": only a comment\n\n")
    with pytest.raises(StrataStreamError) as caught:
        events_of(client, max_reconnects=2)
    assert caught.value.last_seq == 2
    assert len(requests) == 4  # the first stream made progress; then 1 try + 2 reconnects
