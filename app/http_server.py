"""The uvicorn HTTP protocol Strata serves with: uvicorn's own, plus a way to drop a connection.

ASGI gives an application no way to drop a connection: when an application ends a response it
started without finishing it, uvicorn *closes* the transport, and asyncio's close waits until
the write buffer has been sent — forever, for a reader that stopped reading. An event stream
that gives up on a stalled reader (`app.api.sse`) must abort the connection instead, freeing the
buffer and the socket at once. `AbortableHttpToolsProtocol` puts the transport's `abort` into
every request's scope (`scope["extensions"]["strata.abort"]`); `http_protocol()` picks it when
uvicorn would use httptools (its default when httptools is installed, as it is with Strata).
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.api.sse import ABORT_EXTENSION


def http_protocol() -> type[asyncio.Protocol] | str:
    """The `http` argument of `uvicorn.Config`: the abortable httptools protocol, or uvicorn's
    automatic choice when httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency of Strata
        return "auto"

    class AbortableHttpToolsProtocol(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            scope: Any = self.scope
            scope["extensions"] = {ABORT_EXTENSION: self.transport.abort}

    return AbortableHttpToolsProtocol
