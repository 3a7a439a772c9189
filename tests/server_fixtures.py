"""A real HTTP server for client and streaming tests.

Starlette's `TestClient` and `httpx2.ASGITransport` run the app in process and buffer a whole
response body before handing it over, so an event stream (which stays open until its run ends)
cannot be observed while it streams. These fixtures serve the app with uvicorn on 127.0.0.1 in a
background thread, with its own event loop, the in-process worker and this test's database:

- `live_server_factory(routers=(), send_buffer_bytes=None, **setting_overrides)` starts a
  server (settings as in `make_settings`, test layer types registered, `routers` added to the
  app, the protocol `strata serve` uses, and a fixed `SO_SNDBUF` for its connections when
  given) and returns a `LiveServer`; every server started is stopped after
  the test: `should_exit`, then the thread is joined (uvicorn waits for open connections up to
  its graceful-shutdown timeout, then cancels them).
- `live_server`: one server with the default test settings.

The port is picked by the OS (a socket bound to port 0 handed to uvicorn), so parallel tests and
sessions never race for one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import APIRouter

from app.client import AsyncStrataClient, StrataClient
from app.config import Settings
from app.http_server import http_protocol
from app.main import create_app
from tests.api_fixtures import create_key, make_settings
from tests.layer_types import TEST_LAYER_PROVIDERS

STARTUP_TIMEOUT_SECONDS = 20.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0


@dataclass
class LiveServer:
    """A running server and an admin key of tenant `t1`."""

    base_url: str
    key: str
    settings: Settings
    database_url: str
    _clients: list[StrataClient] = field(default_factory=list, repr=False)

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def client(self, key: str | None = None, **options: Any) -> StrataClient:
        """A `StrataClient` for this server (closed after the test)."""
        client = StrataClient(self.base_url, key or self.key, **options)
        self._clients.append(client)
        return client

    def async_client(self, key: str | None = None, **options: Any) -> AsyncStrataClient:
        """An `AsyncStrataClient` for this server; close it in the test (`async with`)."""
        return AsyncStrataClient(self.base_url, key or self.key, **options)

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()


class _ServerThread(threading.Thread):
    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        super().__init__(name="strata-live-server", daemon=True)
        self.server = server
        self.sock = sock
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # SystemExit on a failed startup included
            self.error = exc

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(SHUTDOWN_TIMEOUT_SECONDS)
        self.sock.close()
        if self.is_alive():
            raise RuntimeError(f"uvicorn did not stop within {SHUTDOWN_TIMEOUT_SECONDS}s")


def _wait_until_healthy(base_url: str, thread: _ServerThread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"the server stopped during startup: {thread.error!r}")
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.02)
    raise RuntimeError(f"the server did not answer /healthz within {STARTUP_TIMEOUT_SECONDS}s")


LiveServerFactory = Callable[..., LiveServer]


@pytest.fixture
def live_server_factory(database_url: str) -> Iterator[LiveServerFactory]:
    """Start real servers on this test's database; all are stopped after the test."""
    started: list[tuple[LiveServer, _ServerThread]] = []

    def start(
        *,
        routers: Sequence[APIRouter] = (),
        send_buffer_bytes: int | None = None,
        **overrides: Any,
    ) -> LiveServer:
        settings = make_settings(database_url, **overrides)
        app = create_app(settings, extra_layer_providers=TEST_LAYER_PROVIDERS)
        for router in routers:
            app.include_router(router)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
        if send_buffer_bytes is not None:  # accepted sockets inherit it (Linux)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
        config = uvicorn.Config(
            app,
            http=http_protocol(),
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        thread = _ServerThread(uvicorn.Server(config), sock)
        thread.start()
        base_url = f"http://{host}:{port}"
        try:
            _wait_until_healthy(base_url, thread)
        except BaseException:
            thread.stop()
            raise
        key = create_key(database_url, "t1")
        server = LiveServer(
            base_url=base_url, key=key.key, settings=settings, database_url=database_url
        )
        started.append((server, thread))
        return server

    yield start
    for server, thread in reversed(started):
        server.close_clients()
        thread.stop()


@pytest.fixture
def live_server(live_server_factory: LiveServerFactory) -> LiveServer:
    """A real server with the default test settings; see the module docstring."""
    return live_server_factory()
