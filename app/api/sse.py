"""Server-sent event streams with backpressure, a stall limit and a key re-check.

`EventStream` is the response of both event-stream routes (`/v1/runs/{id}/events/stream` and
the seed protocol's `/events/sse`). It replaces FastAPI's generator-based `EventSourceResponse`
machinery (a producer task and a keep-alive task joined by memory streams) with one loop that
takes the next frame from its iterator only after the previous one was handed to the server:

- **Backpressure.** The server's `send` (uvicorn) returns at once while the connection's write
  buffer is under its high-water mark (64 KiB) and otherwise waits until the socket drains. The
  frames come from `app.runs.service.follow_events`, which reads the next page of events only
  when the previous page's frames were taken, so a reader that does not read stops the reads:
  per connection the process holds one page of events (`_STREAM_PAGE` rows), one frame, and the
  write buffer. The kernel's socket buffers come on top (bounded by `net.ipv4.tcp_wmem`).
- **Stalled readers are dropped.** A `send` that has not completed after
  `STRATA_SSE_STALL_SECONDS` means the reader has taken nothing for that long while data was
  waiting: the stream ends, the connection is aborted (not closed: a graceful close would wait
  for the unsent buffer forever) and everything it held is freed. The reader may reconnect with
  `Last-Event-ID`.
- **Client gone.** A task waits for `http.disconnect` and cancels the stream, so a stream idle
  between events does not outlive its client until its next keep-alive.

Aborting needs the transport, which ASGI does not expose: `app.http_server` runs uvicorn with a
protocol that puts `transport.abort` into the scope's extensions (`ABORT_EXTENSION`). Under
another server the stream still ends on a stall, and the server closes the connection its way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from fastapi.sse import _SSE_EVENT_SCHEMA
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from app.lifespan import AppState

log = structlog.get_logger("strata.api.sse")

ABORT_EXTENSION = "strata.abort"
"""Scope extension: a callable that drops the connection at once (`transport.abort`)."""

KEEPALIVE_FRAME = b": keep-alive\n\n"

OPENAPI_200: dict[str, Any] = {
    "description": "The event stream.",
    "content": {"text/event-stream": {"itemSchema": _SSE_EVENT_SCHEMA}},
}
"""The 200 response of an `EventStream` route in the OpenAPI document (FastAPI describes
only generator routes as event streams by itself)."""
KEY_REVOKED_FRAME = b": api key revoked\n\n"


class StreamEnd(StrEnum):
    """Why an event stream ended (the `reason` label of `strata_event_streams_closed_total`)."""

    COMPLETED = "completed"  # the terminal event was sent (or nothing more will come)
    CLIENT_GONE = "client_gone"  # the client disconnected
    STALLED = "stalled"  # the reader took nothing for STRATA_SSE_STALL_SECONDS
    KEY_REVOKED = "key_revoked"  # the stream's API key was revoked


class _Stalled(Exception):
    pass


class EventStream(Response):
    """A `text/event-stream` response sending `frames` (complete SSE frames, bytes) one by one.

    `frames` may end the stream early by returning; `on_end(reason)` is called once when the
    stream ends, whatever the reason (for metrics). The iterator is closed (`aclose`) before
    the response returns, so its subscriptions are released with the connection.

    Not a subclass of FastAPI's `EventSourceResponse`: FastAPI runs any route whose response
    class is one through its own generator machinery.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        stall_seconds: float,
        on_frame: Callable[[], None] | None = None,
        on_end: Callable[[StreamEnd], None] | None = None,
        status_code: int = 200,
    ) -> None:
        # Not Response.__init__: it renders an (empty) body and would set Content-Length.
        self.status_code = status_code
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.frames = frames
        self.stall_seconds = stall_seconds
        self.on_frame = on_frame
        self.on_end = on_end
        self.end: StreamEnd | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = StreamEnd.CLIENT_GONE
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                try:
                    reason = await self._stream(send)
                except _Stalled:
                    reason = StreamEnd.STALLED
                    abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
                    if abort is not None:
                        abort()
                    log.info("event_stream_stalled", stall_seconds=self.stall_seconds)
                except OSError:
                    reason = StreamEnd.CLIENT_GONE
                group.cancel_scope.cancel()
        finally:
            with contextlib.suppress(Exception):
                await self.frames.aclose()
            self.end = reason
            if self.on_end is not None:
                self.on_end(reason)

    async def _stream(self, send: Send) -> StreamEnd:
        await self._send(
            send,
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers,
            },
        )
        reason = StreamEnd.COMPLETED
        async for frame in self.frames:
            if frame is KEY_REVOKED_FRAME:
                reason = StreamEnd.KEY_REVOKED
            await self._send(send, {"type": "http.response.body", "body": frame, "more_body": True})
            if self.on_frame is not None:
                self.on_frame()
        await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        return reason

    async def _send(self, send: Send, message: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(self.stall_seconds):
                await send(message)
        except TimeoutError:
            raise _Stalled from None


async def sse_frames(
    items: AsyncIterator[Any],
    encode: Callable[[Any], bytes],
    *,
    keepalive_seconds: float,
    key_still_valid: Callable[[], Awaitable[bool]],
) -> AsyncGenerator[bytes, None]:
    """SSE frames for `items` (an item, or None after each idle tick; see
    `app.runs.service.follow_events`): `encode(item)` for items, a keep-alive comment when
    `keepalive_seconds` passed since the last frame, and — when `key_still_valid()` turns
    False (asked on every item and tick) — one `: api key revoked` comment, then the end.

    `items` must tick at least as often as the key is to be re-checked; it is closed when
    this generator is.
    """
    loop = asyncio.get_running_loop()
    last_frame = loop.time()
    try:
        async for item in items:
            if not await key_still_valid():
                yield KEY_REVOKED_FRAME
                return
            if item is None:
                if loop.time() - last_frame < keepalive_seconds:
                    continue
                frame = KEEPALIVE_FRAME
            else:
                frame = encode(item)
            yield frame
            last_frame = loop.time()
    finally:
        closing = getattr(items, "aclose", None)
        if closing is not None:
            await closing()


def event_frame(data: str, *, event: str, event_id: str | None) -> bytes:
    """One SSE frame: `event:`, `data:` (one line: `data` is compact JSON) and `id:` (when the
    event has one)."""
    if event_id is None:
        return f"event: {event}\ndata: {data}\n\n".encode()
    return f"event: {event}\ndata: {data}\nid: {event_id}\n\n".encode()


def open_event_stream(state: AppState, frames: AsyncGenerator[bytes, None]) -> EventStream:
    """The response for `frames`, with the process's stall limit and stream metrics."""
    metrics = state.metrics
    metrics.event_streams_open.inc()

    def ended(reason: StreamEnd) -> None:
        metrics.event_streams_open.dec()
        metrics.event_streams_closed.labels(reason=reason.value).inc()
        state.memory.soon()  # what the stream buffered goes back to the system

    return EventStream(
        frames,
        stall_seconds=state.settings.sse_stall_seconds,
        on_frame=metrics.event_stream_frames.inc,
        on_end=ended,
    )


def stream_tick_seconds(state: AppState, key_check_interval: float) -> float:
    """How long a stream may sit idle before its next tick: the keep-alive interval, or the
    key re-check interval when that is shorter."""
    return min(state.settings.sse_keepalive_seconds, key_check_interval)
