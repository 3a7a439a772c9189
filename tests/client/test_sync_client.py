"""`StrataClient` against a real server: every runs route, errors, and idempotency."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from app.client import (
    TERMINAL_EVENT_TYPES,
    StrataAPIError,
    StrataClient,
    StrataTimeoutError,
    StrataTransportError,
)
from app.models import RunStatus
from app.runs import service
from app.runs.schemas import CreateRunRequest
from tests.client.support import BASIC, run_body, seqs, slow
from tests.server_fixtures import LiveServer, LiveServerFactory


def wait_for_status(client: StrataClient, run_id: uuid.UUID, status: RunStatus) -> None:
    deadline = time.monotonic() + 10
    while client.get_run(run_id).status is not status:
        assert time.monotonic() < deadline, f"run never became {status}"
        time.sleep(0.02)


def test_the_clients_terminal_event_types_are_the_servers() -> None:
    assert service.TERMINAL_EVENT_TYPES == TERMINAL_EVENT_TYPES


def test_create_get_wait_and_events_round_trip(live_server: LiveServer) -> None:
    client = live_server.client()
    created = client.create_run(BASIC)
    assert created.status is RunStatus.QUEUED
    assert client.get_run(created.id).id == created.id

    finished = client.wait_run(created.id, timeout_seconds=20)
    assert finished.status is RunStatus.SUCCEEDED
    assert finished.output == "echo #1: hello"
    assert finished.session_snapshot is not None

    page = client.list_events(created.id)
    assert page.terminal
    assert seqs(page.items) == list(range(1, len(page.items) + 1))
    assert page.items[0].type == "run_queued"
    assert page.items[-1].type == "run_succeeded"
    streamed = list(client.iter_events(created.id))
    assert streamed == page.items


def test_a_typed_request_is_accepted_like_a_mapping(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.create_run(CreateRunRequest.model_validate(BASIC))
    assert client.wait_run(run.id, timeout_seconds=20).status is RunStatus.SUCCEEDED


def test_events_page_with_after_and_limit(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)
    everything = client.list_events(run.id, limit=500).items

    first = client.list_events(run.id, after=0, limit=2)
    assert first.items == everything[:2]
    assert first.next_cursor == 2
    assert not first.terminal
    rest = client.list_events(run.id, after=first.next_cursor, limit=500)
    assert rest.items == everything[2:]
    assert rest.terminal
    empty = client.list_events(run.id, after=rest.next_cursor)
    assert empty.items == []
    assert empty.next_cursor == rest.next_cursor


def test_list_runs_pages_with_cursors_newest_first(live_server: LiveServer) -> None:
    client = live_server.client()
    ids = [client.create_run(BASIC).id for _ in range(5)]
    for run_id in ids:
        client.wait_run(run_id, timeout_seconds=20)

    pages = []
    cursor = None
    while True:
        page = client.list_runs(cursor=cursor, limit=2)
        pages.append([run.id for run in page.items])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == [ids[::-1][0:2], ids[::-1][2:4], ids[::-1][4:]]
    assert [run.id for run in client.iter_runs(page_size=2)] == ids[::-1]


def test_list_runs_filters_by_status(live_server: LiveServer) -> None:
    client = live_server.client()
    done = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)
    stuck = client.create_run(slow(30))
    wait_for_status(client, stuck.id, RunStatus.RUNNING)

    assert [run.id for run in client.iter_runs(status="succeeded")] == [done.id]
    assert [run.id for run in client.iter_runs(status=RunStatus.RUNNING)] == [stuck.id]
    both = client.list_runs(status=["succeeded", "running"])
    assert {run.id for run in both.items} == {done.id, stuck.id}
    client.cancel_run(stuck.id)
    client.wait_run(stuck.id, timeout_seconds=20)


def test_cancel_of_a_running_run_ends_it_cancelled(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.create_run(slow(30))
    wait_for_status(client, run.id, RunStatus.RUNNING)

    cancelling = client.cancel_run(run.id, reason="user pressed stop")
    assert cancelling.status in (RunStatus.CANCELLING, RunStatus.CANCELLED)
    assert cancelling.cancel_reason == "user pressed stop"
    finished = client.wait_run(run.id, timeout_seconds=20)
    assert finished.status is RunStatus.CANCELLED
    assert client.cancel_run(run.id).status is RunStatus.CANCELLED  # idempotent

    events = list(client.iter_events(run.id))
    assert events[-1].type == "run_cancelled"
    assert [event.type for event in events].count("run_cancelled") == 1


def test_cancel_of_a_finished_run_is_a_conflict(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.wait_run(client.create_run(BASIC).id, timeout_seconds=20)
    with pytest.raises(StrataAPIError) as caught:
        client.cancel_run(run.id)
    assert caught.value.status_code == 409
    assert caught.value.code == "run_already_finished"
    assert caught.value.details == {"status": "succeeded"}


def test_wait_run_raises_a_timeout_with_the_last_state_seen(live_server: LiveServer) -> None:
    client = live_server.client()
    run = client.create_run(slow(30))
    started = time.monotonic()
    with pytest.raises(StrataTimeoutError) as caught:
        client.wait_run(run.id, timeout_seconds=0.5)
    assert 0.4 <= time.monotonic() - started < 5
    assert caught.value.run is not None
    assert caught.value.run.id == run.id
    assert not caught.value.run.status.is_terminal
    client.cancel_run(run.id)
    client.wait_run(run.id, timeout_seconds=20)


def test_wait_run_outlasts_the_servers_cap_on_one_wait(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(wait_max_seconds=0.2)
    client = server.client()
    run = client.create_run(slow(1.0))
    finished = client.wait_run(run.id, timeout_seconds=20)
    assert finished.status is RunStatus.SUCCEEDED


def test_the_same_idempotency_key_returns_the_same_run(live_server: LiveServer) -> None:
    client = live_server.client()
    first = client.create_run(BASIC, idempotency_key="order-1")
    again = client.create_run(BASIC, idempotency_key="order-1")
    assert again.id == first.id
    assert again.idempotency_key == "order-1"

    with pytest.raises(StrataAPIError) as caught:
        client.create_run(slow(1), idempotency_key="order-1")
    assert caught.value.status_code == 409
    assert caught.value.code == "idempotency_key_reused"
    assert caught.value.details == {"run_id": str(first.id)}


def test_an_unknown_layer_type_is_a_422_with_its_code(live_server: LiveServer) -> None:
    client = live_server.client()
    body = run_body()
    body["composition"]["layers"][2]["type"] = "llm.nope"
    with pytest.raises(StrataAPIError) as caught:
        client.create_run(body)
    assert caught.value.status_code == 422
    assert caught.value.code == "unknown_layer_type"
    assert caught.value.message
    assert list(client.iter_runs()) == []


def test_a_request_that_does_not_parse_is_a_422_with_the_fields(live_server: LiveServer) -> None:
    with pytest.raises(StrataAPIError) as caught:
        live_server.client().create_run({"composition": {"layers": []}, "colour": "red"})
    assert caught.value.status_code == 422
    assert caught.value.code == "request_invalid"
    assert any(error["loc"][-1] == "colour" for error in caught.value.details["errors"])


def test_a_wrong_key_is_a_401(live_server: LiveServer) -> None:
    client = live_server.client(key="sk-not-a-key")
    with pytest.raises(StrataAPIError) as caught:
        client.list_runs()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


def test_an_unknown_run_is_a_404(live_server: LiveServer) -> None:
    client = live_server.client()
    for call in (client.get_run, client.wait_run, client.cancel_run, client.list_events):
        with pytest.raises(StrataAPIError) as caught:
            call(uuid.uuid4())
        assert (caught.value.status_code, caught.value.code) == (404, "run_not_found")


def test_no_server_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        StrataClient(f"http://127.0.0.1:{port}", "sk-x", timeout=2) as client,
        pytest.raises(StrataTransportError),
    ):
        client.list_runs()
