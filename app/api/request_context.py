"""Request ids, the ids bound to log lines, and the access log.

`RequestContextMiddleware` wraps the whole application (outside Starlette's error middleware,
see `app.main`) and, for every HTTP request:

- takes the caller's `X-Request-ID` when it is 1 to 128 visible ASCII characters (0x21-0x7E),
  otherwise makes a new one (32 hex characters);
- binds it as `request_id` with `structlog.contextvars`, so every log line written while the
  request is handled carries it (lines from Python's `logging` too, see `app.logging`);
- answers it in the `X-Request-ID` response header, on every response including errors and 500s;
- writes one `http_request` line when the response is complete: `method`, `path`, `status`,
  `duration_ms`, plus the bound ids. For an event stream that is when the stream closes.

Handlers add the ids they learn: `tenant_id` where the API key is resolved
(`app.api.deps.authenticate_request`), `run_id` from a `{run_id}` path parameter
(`bind_path_run_id`, called by the route class) and for the run a request creates
(`bind_run_id`). They must bind from `async` code: a sync dependency runs in a worker thread
with a copy of the context.

Invariants: the middleware is pure ASGI (not `BaseHTTPMiddleware`): response messages pass
through as they are sent, so event streams are never buffered, and no task or context copy
separates it from the handlers, so ids they bind are visible to the access line. Headers
(`Authorization`!), bodies and query strings (which may carry credentials) are never logged. It
runs on every request, so it does the least it can: one scan of the request headers, one bytes
pattern match, one header appended, one log call.
"""

from __future__ import annotations

import re
import uuid
from asyncio import CancelledError
from time import perf_counter_ns
from typing import Any

import structlog
import uuid_utils
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, clear_contextvars

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128

_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_REQUEST_ID_LENGTH)
_MAX_LOGGED_PATH = 512
_CLIENT_GONE = 499  # no response was started: the client left or the server cancelled the task

log = structlog.get_logger("strata.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_ns = perf_counter_ns()
        raw_id = _incoming_request_id(scope)
        if raw_id is None:
            request_id = uuid_utils.uuid4().hex  # random like token_hex, without a syscall
            raw_id = request_id.encode("ascii")
        else:
            request_id = raw_id.decode("ascii")
        # An ASGI server may run requests in a context that earlier code bound values in.
        clear_contextvars()
        bind_contextvars(request_id=request_id)
        response_header = (_HEADER, raw_id)
        status = 0

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the response object may reuse its own header list.
                message["headers"] = [*message.get("headers", ()), response_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except CancelledError:
            status = status or _CLIENT_GONE
            raise
        finally:
            path: str = scope["path"]
            if len(path) > _MAX_LOGGED_PATH:
                path = path[:_MAX_LOGGED_PATH] + "..."
            log.info(
                "http_request",
                method=scope["method"],
                path=path,
                # 0: the application failed before answering; the server answers 500.
                status=status or 500,
                duration_ms=((perf_counter_ns() - started_ns) // 1000) / 1000,
            )


def _incoming_request_id(scope: Scope) -> bytes | None:
    """The caller's X-Request-ID when it is acceptable, else None (a new one is made)."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            return value if _VALID_REQUEST_ID.fullmatch(value) else None
    return None


def bind_tenant_id(tenant_id: uuid.UUID) -> None:
    """Tag the rest of this request's log lines (and its access line) with the tenant."""
    bind_contextvars(tenant_id=str(tenant_id))


def bind_run_id(run_id: uuid.UUID) -> None:
    """Tag the rest of this request's log lines (and its access line) with a run."""
    bind_contextvars(run_id=str(run_id))


def bind_path_run_id(path_params: dict[str, Any]) -> None:
    """Bind the `{run_id}` path parameter of a route that has one (`app.api.edge.StrataRoute`
    calls it before the route's dependencies, from the request's task). A value that is not a
    UUID is not bound (the route answers 422 anyway)."""
    raw = path_params.get("run_id")
    if raw is None:
        return
    try:
        run_id = uuid.UUID(raw)
    except ValueError:
        return
    bind_run_id(run_id)
