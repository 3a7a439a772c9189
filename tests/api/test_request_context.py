"""Request ids and the access log, seen from a client and in the log events.

`X-Request-ID` is honoured when it is 1-128 visible ASCII characters, replaced otherwise, and
answered on every response; every log event written while a request is handled carries it, and
one `http_request` event per request names its method, path, status, duration and the tenant
and run it concerned. The real process's stderr is checked in `tests/test_logging.py`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import structlog
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from app.client import TERMINAL_EVENT_TYPES
from tests.api_fixtures import Api
from tests.client.support import frame_event, read_frames, slow
from tests.runs.bodies import chat
from tests.server_fixtures import LiveServer

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """Log events of this test, with the values bound to the request's context."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


def access_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["event"] == "http_request"]


def test_a_request_without_an_id_gets_a_new_one_each_time(api: Api) -> None:
    first = api.client.get("/healthz").headers["X-Request-ID"]
    second = api.client.get("/healthz").headers["X-Request-ID"]

    assert GENERATED.fullmatch(first)
    assert GENERATED.fullmatch(second)
    assert first != second


@pytest.mark.parametrize(
    "request_id", ["req-42", "a" * 128, "0193f0a2-aaaa-7bbb-8ccc-ddddeeeeffff", "x:/=+_.~!"]
)
def test_a_valid_request_id_is_honoured_and_echoed(
    api: Api, events: list[dict[str, Any]], request_id: str
) -> None:
    response = api.client.get("/healthz", headers={"X-Request-ID": request_id})

    assert response.headers["X-Request-ID"] == request_id
    assert access_lines(events)[-1]["request_id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [b"a" * 129, b"two words", b"caf\xc3\xa9", b"", b"tab\there"],
    ids=["too-long", "space", "non-ascii", "empty", "control"],
)
def test_an_invalid_request_id_is_replaced(
    api: Api, events: list[dict[str, Any]], request_id: bytes
) -> None:
    response = api.client.get("/healthz", headers={"X-Request-ID": request_id})

    answered = response.headers["X-Request-ID"]
    assert GENERATED.fullmatch(answered)
    assert access_lines(events)[-1]["request_id"] == answered


def test_error_responses_carry_the_request_id(api: Api) -> None:
    huge = {"composition": {"layers": []}, "metadata": {"pad": "x" * 2_000_000}}
    cases = [
        ("GET", "/no/such/path", {}, 404),
        ("GET", "/v1/runs", {}, 401),
        ("POST", "/v1/runs", {"json": {"composition": 3}, "headers": api.headers()}, 422),
        ("POST", "/v1/runs", {"json": huge, "headers": api.headers()}, 413),
    ]
    for number, (method, path, options, status) in enumerate(cases):
        headers = {**options.pop("headers", {}), "X-Request-ID": f"err-{number}"}
        response = api.client.request(method, path, headers=headers, **options)
        assert response.status_code == status, (path, response.text)
        assert response.headers["X-Request-ID"] == f"err-{number}"


def test_an_unhandled_error_is_a_500_with_the_request_id_on_every_log_line(
    api: Api, events: list[dict[str, Any]]
) -> None:
    app: Any = api.client.app

    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("bug")

    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/boom", headers={"X-Request-ID": "boom-1"})

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["X-Request-ID"] == "boom-1"
    error = next(event for event in events if event["event"] == "unhandled_error")
    assert error["request_id"] == "boom-1"
    access = access_lines(events)[-1]
    assert (access["path"], access["status"], access["request_id"]) == ("/boom", 500, "boom-1")


def test_the_access_line_names_the_tenant_and_the_run(
    api: Api, events: list[dict[str, Any]]
) -> None:
    created = api.client.post(
        "/v1/runs", json=chat(), headers={**api.headers(), "X-Request-ID": "create-1"}
    )
    run_id = created.json()["id"]
    api.wait(run_id)
    api.client.get(f"/v1/runs/{run_id}/events", headers=api.headers())
    api.client.get("/v1/runs", headers=api.headers())
    api.client.get("/healthz")

    create, wait, page, listing, health = access_lines(events)[-5:]
    tenant_id = create["tenant_id"]
    uuid.UUID(tenant_id)
    assert create == {
        "event": "http_request",
        "log_level": "info",
        "method": "POST",
        "path": "/v1/runs",
        "status": 202,
        "duration_ms": create["duration_ms"],
        "request_id": "create-1",
        "tenant_id": tenant_id,
        "run_id": run_id,
    }
    assert isinstance(create["duration_ms"], float) and create["duration_ms"] > 0
    assert (wait["path"], wait["run_id"], wait["tenant_id"]) == (
        f"/v1/runs/{run_id}/wait",
        run_id,
        tenant_id,
    )
    assert (page["run_id"], page["status"]) == (run_id, 200)
    assert "run_id" not in listing and listing["tenant_id"] == tenant_id
    assert "tenant_id" not in health and "run_id" not in health
    # ids belong to their own request only
    assert len({line["request_id"] for line in (create, wait, page, listing, health)}) == 5


def test_the_access_line_holds_no_query_string_headers_or_key(
    api: Api, events: list[dict[str, Any]]
) -> None:
    api.client.get("/v1/runs", params={"cursor": "canary-cursor-8d1"}, headers=api.headers())
    api.client.get("/v1/runs/not-a-uuid", headers=api.headers())

    listing, invalid = access_lines(events)[-2:]
    assert listing["path"] == "/v1/runs"
    assert (invalid["status"], "run_id" in invalid) == (422, False)
    logged = repr(events)
    assert "canary-cursor-8d1" not in logged
    assert api.key not in logged
    assert "Bearer" not in logged


def test_an_event_stream_is_passed_through_unbuffered_with_its_request_id(
    live_server: LiveServer,
) -> None:
    client = live_server.client()
    run = client.create_run(slow(1.5))
    headers = {**live_server.headers(), "X-Request-ID": "stream-1"}

    with httpx2.stream(
        "GET", f"{live_server.base_url}/v1/runs/{run.id}/events/stream", headers=headers
    ) as response:
        assert response.headers["X-Request-ID"] == "stream-1"
        frames = read_frames(response)
        first = frame_event(next(frame for frame in frames if frame.data))
        # the first event arrives while the run still runs: nothing buffers the stream
        assert client.get_run(run.id).status.is_terminal is False
        assert first.type not in TERMINAL_EVENT_TYPES
        started = time.monotonic()
        rest = [frame_event(frame) for frame in frames if frame.data]
    assert rest[-1].type in TERMINAL_EVENT_TYPES
    assert time.monotonic() - started > 0.2
