"""The one translation point from exceptions to HTTP responses.

Every error body has the same shape::

    {"error": {"code": "<stable code>", "message": "<for humans>", "details": {...}}}

`AppError` subclasses carry their status and code. Request validation (bodies, query and path
parameters that do not parse) answers 422 with code `request_invalid` and the offending fields in
`details.errors`. Starlette's own HTTP errors (404 for an unknown path, 405, 413 for an oversized
body) keep their status with a code derived from it. Anything else is a bug: 500 with code
`internal_error` and nothing of the exception in the body (it is logged instead), answered by
`UnhandledErrorMiddleware` on a connection that stays usable. A database
that cannot be reached answers 503 with code `database_unavailable` and `Retry-After`, never 500.

Under the seed protocol's prefix (`app.compat.PREFIX`) the same errors, with the same statuses and
headers, are rendered in that protocol's shape instead, FastAPI's `{"detail": …}`
(`app.compat.errors.detail_body`); `render_error` picks the shape from the request path, for the
handlers here and for the middlewares that answer before routing (body size, unhandled errors).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.compat import under_prefix
from app.compat.errors import detail_body
from app.db import is_database_unavailable
from app.errors import AppError

log = structlog.get_logger("strata.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details or {}))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def render_error(
    path: str,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error response in the shape the request path's protocol uses: Strata's, or the seed
    protocol's `{"detail": …}` under its prefix."""
    if under_prefix(path):
        body = detail_body(status, code, message, details)
        return JSONResponse(body, status_code=status, headers=headers)
    return error_response(status, code, message, details, headers)


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for error in errors:
        item = {
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg"),
            "type": error.get("type"),
        }
        out.append(item)
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return render_error(
            request.url.path, exc.status_code, exc.code, exc.message, exc.details, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return render_error(
            request.url.path,
            422,
            "request_invalid",
            "the request does not match the schema",
            {"errors": _jsonable_errors(exc.errors())},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return render_error(
            request.url.path,
            exc.status_code,
            code,
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(request.url.path, exc)

    # Registered per class (not only under `Exception`): Starlette answers handlers for
    # `Exception` from its outermost middleware and then re-raises, which closes the client's
    # keep-alive connection; a database outage must be a plain 503 on a healthy connection.
    # Every other exception is answered by `UnhandledErrorMiddleware` for the same reason.
    for exc_class in (OSError, DBAPIError, PoolTimeoutError):
        app.add_exception_handler(exc_class, _database_error)


def unexpected_error_response(path: str, exc: BaseException) -> JSONResponse:
    """503 `database_unavailable` for an outage, else a logged 500 `internal_error`.

    The log line names the exception class and carries its traceback; `app.logging` hides the
    message of database errors, which can quote row values.
    """
    if is_database_unavailable(exc):
        log.warning("database_unavailable", path=path, error_class=type(exc).__name__)
        return render_error(
            path,
            503,
            "database_unavailable",
            "the database cannot be reached; retry later",
            headers={"Retry-After": "1"},
        )
    log.error("unhandled_error", path=path, error_class=type(exc).__name__, exc_info=exc)
    return render_error(path, 500, "internal_error", "internal server error")


class UnhandledErrorMiddleware:
    """Answers an exception no handler took with the 500 (or 503) error body, and keeps the
    connection: Starlette's own last-resort handler re-raises after answering, and uvicorn then
    drops the keep-alive connection without `Connection: close`, so the client's next request on
    it fails. Once a response has started (a stream), the exception is re-raised: the only honest
    signal left is closing the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = unexpected_error_response(scope["path"], exc)
            await response(scope, receive, send)
