"""Errors raised by the Strata client; every one of them is a `StrataError`."""

from __future__ import annotations

from typing import Any

from app.runs.schemas import RunRead


class StrataError(Exception):
    """Base class of every error the client raises."""


class StrataAPIError(StrataError):
    """The server answered with an error status (4xx or 5xx).

    `code` is the server's stable error code (`run_not_found`, `unknown_layer_type`, …), taken
    from the body `{"error": {"code", "message", "details"}}`. A body that does not have that
    shape (a proxy's HTML page, say) gives `code="http_<status>"` and its text as `message`.
    """

    def __init__(
        self, status_code: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}


class StrataTransportError(StrataError):
    """The request did not get an answer: connection refused or lost, or an HTTP timeout.

    The `httpx2` exception is the `__cause__`. A POST that failed this way may or may not have
    reached the server; retry `create_run` only with an idempotency key.
    """


class StrataTimeoutError(StrataError):
    """`wait_run`'s overall deadline passed and the run is still not terminal.

    `run` is the run as the server last showed it (None when no answer came in time).
    """

    def __init__(self, message: str, run: RunRead | None) -> None:
        super().__init__(message)
        self.run = run


class StrataStreamError(StrataError):
    """An event stream failed for good.

    Either the reconnect budget ran out (the last failure is the `__cause__`), or the stream
    broke the protocol (a frame that is not a run event, an event out of order), which no
    reconnect can fix. `last_seq` is the seq of the last event delivered to the caller, so
    `iter_events(run_id, after=last_seq)` resumes exactly where this stream stopped.
    """

    def __init__(self, message: str, *, run_id: str, last_seq: int) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.last_seq = last_seq
