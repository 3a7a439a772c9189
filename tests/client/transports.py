"""`httpx2` transports that break event streams on purpose, to exercise client reconnects.

They wrap the real HTTP transport (the server is real) and only touch `/events/stream`
requests, recording each one so tests can check the `Last-Event-ID` a reconnect sent.

- `cut_streams=n`: the first n streams are cut after `frames_before_cut` complete frames plus
  the first bytes of the next one, either by ending the body (`cut="eof"`, a premature end) or by
  raising `httpx2.ReadError` (`cut="error"`, a dropped connection).
- `fail_streams=n`: the first n stream requests get a 503 error body without reaching the
  server (`n=-1`: all of them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Literal

import httpx2

Cut = Literal["eof", "error"]
PARTIAL_FRAME_BYTES = 7
UNAVAILABLE = {"error": {"code": "service_unavailable", "message": "try again", "details": {}}}


def _is_stream(request: httpx2.Request) -> bool:
    return request.url.path.endswith("/events/stream")


class _Plan:
    def __init__(self, cut_streams: int, frames_before_cut: int, cut: Cut, fail_streams: int):
        self.cut_streams = cut_streams
        self.frames_before_cut = frames_before_cut
        self.cut = cut
        self.fail_streams = fail_streams
        self.stream_requests: list[httpx2.Request] = []

    @property
    def last_event_ids(self) -> list[str | None]:
        return [request.headers.get("last-event-id") for request in self.stream_requests]

    def should_fail(self) -> bool:
        if self.fail_streams == 0:
            return False
        self.fail_streams -= 1
        return True

    def should_cut(self, response: httpx2.Response) -> bool:
        if self.cut_streams == 0 or response.status_code != 200:
            return False
        self.cut_streams -= 1
        return True

    def split(self, buffer: bytes, frames: int) -> tuple[list[bytes], bytes, int]:
        """Complete frames to pass on (up to the cut), the rest, and the new frame count."""
        out: list[bytes] = []
        while frames < self.frames_before_cut and b"\n\n" in buffer:
            end = buffer.index(b"\n\n") + 2
            out.append(buffer[:end])
            buffer = buffer[end:]
            frames += 1
        return out, buffer, frames

    def finish(self, buffer: bytes) -> Iterator[bytes]:
        if buffer[:PARTIAL_FRAME_BYTES]:
            yield buffer[:PARTIAL_FRAME_BYTES]
        if self.cut == "error":
            raise httpx2.ReadError("connection dropped by the test transport")


class _CutStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, plan: _Plan) -> None:
        self._inner = inner
        self._plan = plan

    def __iter__(self) -> Iterator[bytes]:
        buffer, frames = b"", 0
        for chunk in self._inner:
            out, buffer, frames = self._plan.split(buffer + chunk, frames)
            yield from out
            if frames >= self._plan.frames_before_cut:
                yield from self._plan.finish(buffer)
                return
        if buffer:
            yield buffer

    def close(self) -> None:
        self._inner.close()


class _AsyncCutStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, plan: _Plan) -> None:
        self._inner = inner
        self._plan = plan

    async def __aiter__(self) -> AsyncIterator[bytes]:
        buffer, frames = b"", 0
        async for chunk in self._inner:
            out, buffer, frames = self._plan.split(buffer + chunk, frames)
            for piece in out:
                yield piece
            if frames >= self._plan.frames_before_cut:
                for piece in self._plan.finish(buffer):
                    yield piece
                return
        if buffer:
            yield buffer

    async def aclose(self) -> None:
        await self._inner.aclose()


class BreakingTransport(httpx2.BaseTransport):
    def __init__(
        self,
        *,
        cut_streams: int = 0,
        frames_before_cut: int = 1,
        cut: Cut = "eof",
        fail_streams: int = 0,
    ) -> None:
        self.plan = _Plan(cut_streams, frames_before_cut, cut, fail_streams)
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if not _is_stream(request):
            return self._inner.handle_request(request)
        self.plan.stream_requests.append(request)
        if self.plan.should_fail():
            return httpx2.Response(503, json=UNAVAILABLE)
        response = self._inner.handle_request(request)
        if not self.plan.should_cut(response):
            return response
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_CutStream(response.stream, self.plan),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


class AsyncBreakingTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self,
        *,
        cut_streams: int = 0,
        frames_before_cut: int = 1,
        cut: Cut = "eof",
        fail_streams: int = 0,
    ) -> None:
        self.plan = _Plan(cut_streams, frames_before_cut, cut, fail_streams)
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if not _is_stream(request):
            return await self._inner.handle_async_request(request)
        self.plan.stream_requests.append(request)
        if self.plan.should_fail():
            return httpx2.Response(503, json=UNAVAILABLE)
        response = await self._inner.handle_async_request(request)
        if not self.plan.should_cut(response):
            return response
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_AsyncCutStream(response.stream, self.plan),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
