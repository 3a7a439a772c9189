"""What the sync and async clients share: URLs, headers, bodies, error and event decoding.

Nothing here does I/O, so `StrataClient` and `AsyncStrataClient` differ only in how they send.
A request is described once as a `Call` (built in `app.client._calls`, one function per client
method); each client only sends it, and follows `next_page` for the `iter_*` methods.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import BaseModel, ValidationError

from app.client._errors import StrataAPIError, StrataError, StrataStreamError
from app.client._sse import SSEFrame
from app.runs.schemas import CreateRunRequest, RunEventRead

TERMINAL_EVENT_TYPES = frozenset({"run_succeeded", "run_paused", "run_failed", "run_cancelled"})
"""A run's log ends with exactly one event of these types; a stream closes after it."""

WAIT_MARGIN_SECONDS = 5.0
"""Extra read time a long-poll gets on top of the time the server may hold it."""

CLEANUP_WAIT_SECONDS = 30.0
"""A retire lets a cleanup run it started take at least this long, even after its wait."""

Model = TypeVar("Model", bound=BaseModel)
Result = TypeVar("Result")
RunId = uuid.UUID | str
Id = uuid.UUID | str
StatusFilter = str | Sequence[str] | None


class ClientConfig:
    """Base URL, key and timeout; builds URLs and headers for both clients."""

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        if not base_url:
            raise ValueError("base_url is required, e.g. http://127.0.0.1:8000")
        if not api_key:
            raise ValueError("api_key is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key

    def url(self, *segments: RunId) -> str:
        return self.base_url + v1_path("runs", *segments)

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", **(extra or {})}

    def wait_timeout(self, hold_seconds: float) -> httpx2.Timeout:
        """Timeouts for a long-poll the server may hold for `hold_seconds`."""
        return httpx2.Timeout(self.timeout, read=hold_seconds + WAIT_MARGIN_SECONDS)


def v1_path(*segments: object) -> str:
    """`/v1/<segment>/…`, each segment percent-encoded (ids and names are data, not paths)."""
    return "/v1/" + "/".join(quote(str(segment), safe="") for segment in segments)


def request_body(request: BaseModel | Mapping[str, Any]) -> Any:
    """The JSON body for a request model or a mapping.

    A model sends the fields that were set (so a PATCH changes only those, and the server
    applies its own defaults); a mapping is sent as is: the server validates it.
    """
    if isinstance(request, BaseModel):
        return request.model_dump(mode="json", exclude_unset=True)
    return dict(request)


def run_request_body(request: CreateRunRequest | Mapping[str, Any]) -> Any:
    """The JSON body of `POST /v1/runs`. A mapping is sent as is: the server validates it."""
    return request_body(request)


def model_parser(model: type[Model]) -> Callable[[httpx2.Response], Model]:
    """Parse a response as `model` (`StrataAPIError` for an error status)."""

    def parse(response: httpx2.Response) -> Model:
        return parse_response(response, model)

    return parse


def expect_no_content(response: httpx2.Response) -> None:
    """For routes that answer 204: only an error status means something."""
    if response.is_error:
        raise api_error(response)


@dataclass(frozen=True)
class Call(Generic[Result]):
    """One request a client method sends, and how its answer is read.

    `hold_seconds`: how long the server may hold the request before answering (long-polls,
    retires); the read timeout gets that on top of the client's. `cursor_param` names where a
    list's `next_cursor` goes to fetch the page after (a query parameter, or a body field when
    `cursor_in_body`).
    """

    method: str
    path: str
    parse: Callable[[httpx2.Response], Result]
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    headers: Mapping[str, str] | None = None
    hold_seconds: float | None = None
    cursor_param: str | None = None
    cursor_in_body: bool = False

    def timeout(self, config: ClientConfig) -> float | httpx2.Timeout:
        if self.hold_seconds is None:
            return config.timeout
        return config.wait_timeout(self.hold_seconds)

    def next_page(self, page: object) -> Call[Result] | None:
        """The call for the page after `page`, or None when `page` was the last one."""
        cursor = getattr(page, "next_cursor", None)
        if cursor is None or self.cursor_param is None:
            return None
        if self.cursor_in_body:
            return replace(self, json={**(self.json or {}), self.cursor_param: cursor})
        params = [(name, value) for name, value in self.params if name != self.cursor_param]
        return replace(self, params=(*params, (self.cursor_param, str(cursor))))


def query(**values: object) -> tuple[tuple[str, str], ...]:
    """Query parameters, leaving out None; a list or tuple repeats its parameter."""
    params: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            params.extend((name, str(item)) for item in value)
        else:
            params.append((name, str(value)))
    return tuple(params)


def run_list_params(
    status: StatusFilter,
    cursor: str | None,
    limit: int,
    filters: Mapping[str, object | None],
) -> list[tuple[str, str]]:
    """The query of `GET /v1/runs`: `status` (repeated), the filters that are set (times as ISO
    8601, which must carry an offset: the server refuses naive times), `limit`, `cursor`."""
    params = [*status_params(status), ("limit", str(limit))]
    for name, value in filters.items():
        if value is not None:
            params.append((name, value.isoformat() if isinstance(value, datetime) else str(value)))
    if cursor is not None:
        params.append(("cursor", cursor))
    return params


def status_params(status: StatusFilter) -> list[tuple[str, str]]:
    if status is None:
        return []
    if isinstance(status, str):
        return [("status", str(status))]
    return [("status", str(value)) for value in status]


def api_error(response: httpx2.Response) -> StrataAPIError:
    """The error a (read) error response stands for."""
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details")
    except (ValueError, KeyError, TypeError):
        return StrataAPIError(status, f"http_{status}", response.text[:1000])
    return StrataAPIError(
        status, str(code), str(message), details if isinstance(details, dict) else {}
    )


def parse_response(response: httpx2.Response, model: type[Model]) -> Model:
    """The body of a (read) response as `model`; `StrataAPIError` for an error status."""
    if response.is_error:
        raise api_error(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise StrataError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not a {model.__name__}"
        ) from exc


class EventCursor:
    """Turns SSE frames into run events and keeps the stream's position.

    It enforces what the server promises: seqs grow by exactly one, so after a reconnect an
    event already delivered is dropped and a missing one is an error, never silently skipped.
    """

    def __init__(self, run_id: RunId, after: int) -> None:
        self.run_id = str(run_id)
        self.last_seq = after
        self.finished = False

    def stream_headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_seq > 0:
            headers["Last-Event-ID"] = str(self.last_seq)
        return headers

    def accept(self, frame: SSEFrame) -> RunEventRead | None:
        """The event in `frame`, or None for a frame to skip (keep-alive, duplicate)."""
        if frame.data is None:
            return None
        try:
            event = RunEventRead.model_validate_json(frame.data)
        except ValidationError as exc:
            raise self.error(f"a frame is not a run event: {frame.data[:200]!r}") from exc
        if frame.id is not None and frame.id != str(event.seq):
            raise self.error(f"frame id {frame.id!r} does not match event seq {event.seq}")
        if event.seq <= self.last_seq:
            return None
        if event.seq != self.last_seq + 1:
            raise self.error(f"event {self.last_seq + 1} is missing: the server sent {event.seq}")
        self.last_seq = event.seq
        self.finished = event.type in TERMINAL_EVENT_TYPES
        return event

    def error(self, message: str) -> StrataStreamError:
        return StrataStreamError(
            f"run {self.run_id}: {message}", run_id=self.run_id, last_seq=self.last_seq
        )

    def gave_up(self, reconnects: int) -> StrataStreamError:
        return self.error(
            f"the event stream failed {reconnects} times in a row without progress; "
            f"resume with after={self.last_seq}"
        )


def check_stream_response(response: httpx2.Response, cursor: EventCursor) -> None:
    """Raise a protocol error when a 2xx answer is not an event stream."""
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        raise cursor.error(f"expected text/event-stream, got {content_type or 'no content type'}")


class RetryableStatus(Exception):
    """A 5xx answer to a stream request: reconnect, and report `error` if that fails too."""

    def __init__(self, error: StrataAPIError) -> None:
        super().__init__(str(error))
        self.error = error
