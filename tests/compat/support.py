"""A minimal client of the seed protocol for the contract tests.

It does what the seed's client does (create, cancel, page, stream, wait by polling the status)
and parses every answer with the strict models of `tests.compat.protocol`, so a response with a
field too many or too few fails the test that received it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

import httpx2

from app.client import SSEDecoder, SSEFrame
from tests.compat.protocol import (
    EVENT,
    CreateRunResponse,
    Event,
    EventsPage,
    HTTPError,
    RunStatusResponse,
)

PREFIX = "/compat/agent-backend"


class HTTP(Protocol):
    """What the tests need of `httpx2.Client` and Starlette's `TestClient`."""

    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


class SeedClient:
    def __init__(self, http: HTTP, key: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}

    def create(self, body: dict[str, Any]) -> CreateRunResponse:
        response = self.http.post(f"{PREFIX}/runs", json=body, headers=self.headers)
        assert response.status_code == 202, response.text
        return CreateRunResponse.model_validate_json(response.text)

    def status(self, run_id: str) -> RunStatusResponse:
        response = self.http.get(f"{PREFIX}/runs/{run_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return RunStatusResponse.model_validate_json(response.text)

    def wait(self, run_id: str, timeout: float = 20.0) -> RunStatusResponse:
        """Poll the status until the run is no longer `running` (the seed client's wait)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(run_id)
            if current.status != "running" or time.monotonic() > deadline:
                return current
            time.sleep(0.05)

    def cancel(self, run_id: str, reason: str | None = None, message: str | None = None) -> Any:
        return self.http.post(
            f"{PREFIX}/runs/{run_id}/cancel",
            json={"reason": reason, "message": message},
            headers=self.headers,
        )

    def page(self, run_id: str, after: str = "0-0", limit: int = 100) -> EventsPage:
        response = self.http.get(
            f"{PREFIX}/runs/{run_id}/events",
            params={"after": after, "limit": limit},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text
        return EventsPage.model_validate_json(response.text)

    def all_events(self, run_id: str, limit: int = 100) -> list[Event]:
        """Every event, page after page from `"0-0"` until `next_cursor` is null."""
        events: list[Event] = []
        cursor = "0-0"
        for _ in range(1000):
            page = self.page(run_id, after=cursor, limit=limit)
            events.extend(page.events)
            if page.next_cursor is None:
                return events
            cursor = page.next_cursor
        raise AssertionError("the pages never ended")


def error_of(response: Any, status: int) -> HTTPError:
    assert response.status_code == status, response.text
    return HTTPError.model_validate_json(response.text)


def read_frames(response: httpx2.Response) -> Iterator[SSEFrame]:
    decoder = SSEDecoder()
    for chunk in response.iter_bytes():
        yield from decoder.feed(chunk)
    yield from decoder.close()


def frame_event(frame: SSEFrame) -> Event:
    """The event a frame carries; its `id` and `event` fields must match the event's."""
    assert frame.data is not None, frame
    event = EVENT.validate_json(frame.data)
    assert frame.id == event.id
    assert frame.event == event.type
    return event


def stream(
    base_url: str, key: str, run_id: str, headers: dict[str, str] | None = None, **params: Any
) -> Any:
    return httpx2.stream(
        "GET",
        f"{base_url}{PREFIX}/runs/{run_id}/events/sse",
        params=params,
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=10.0,
    )


def seq_of(event: Event) -> int:
    assert event.id is not None and event.id.endswith("-0"), event.id
    return int(event.id[:-2])
