"""Real tool servers for the tool layers' tests: an MCP server and a caller-hosted tool endpoint.

`FakeMcp` is an MCP server built with the `mcp` SDK (`MCPServer`, served over streamable HTTP at
`/mcp`) with its tools: `forecast(city, days=1)` answers `sunny in <city> for <days> day(s)`,
`explode(reason)` always fails with `the weather service exploded: <reason>`, and
`slow(seconds)` answers `done` after sleeping that long. It records every
tool call it executed (`calls`) and the headers of every HTTP request it received (`headers`).

`FakeToolEndpoint` is a workflow engine's tool endpoint (`POST /tools`): it verifies every
request with `verify_strata_request` — the function docs/tools-http.md gives implementers, taken
from that page — against its `secret`, answers 401 when it does not verify, and otherwise
answers per tool name:

- `lookup_order` → `{"order_id": <args.order_id>, "status": "shipped"}`
- `report` → `{"text": "x" * args.size}` (a result as large as you ask)
- `fail` → HTTP 500 `inventory database is down`
- `not_json` → 200 with a body that is not JSON
- `slow` → sleeps `args.seconds` first, then `{"slept": true}`
- anything else → 404

It records every request (`requests`: headers, raw body, whether it verified).

Fixtures: `fake_mcp_server` (session) / `fake_mcp` (function, records cleared), and
`tool_endpoint_server` (session) / `tool_endpoint` (function: records cleared, a fresh random
secret for the test).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.threaded_server import ThreadedServer

DOCS = Path(__file__).resolve().parent.parent / "docs" / "tools-http.md"


def documented_verifier() -> Callable[..., bool]:
    """`verify_strata_request` exactly as docs/tools-http.md prints it."""
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    [source] = [block for block in blocks if "def verify_strata_request" in block]
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOCS), "exec"), namespace)
    verifier: Callable[..., bool] = namespace["verify_strata_request"]
    return verifier


# --- MCP ------------------------------------------------------------------------------------------


def build_weather_server(calls: list[tuple[str, dict[str, Any]]]) -> MCPServer:
    server = MCPServer("weather", log_level="WARNING")

    @server.tool()
    def forecast(city: str, days: int = 1) -> str:
        """The weather forecast of a city for the next days."""
        calls.append(("forecast", {"city": city, "days": days}))
        return f"sunny in {city} for {days} day(s)"

    @server.tool()
    def explode(reason: str) -> str:
        """A tool that always fails."""
        calls.append(("explode", {"reason": reason}))
        raise ToolError(f"the weather service exploded: {reason}")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answers after a while."""
        calls.append(("slow", {"seconds": seconds}))
        await asyncio.sleep(seconds)
        return "done"

    return server


class FakeMcp:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._headers: list[dict[str, str]] = []
        inner = build_weather_server(self._calls).streamable_http_app()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                with self._lock:
                    self._headers.append(
                        {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                    )
            await inner(scope, receive, send)

        self._server = ThreadedServer(app, name="fake-mcp", lifespan="on")

    @property
    def url(self) -> str:
        return f"{self._server.url}/mcp"

    def settings(self, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A `Settings.mcp_servers` entry pointing at this server."""
        return {"url": self.url, "headers": dict(headers or {})}

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._calls)

    @property
    def headers(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._headers)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._headers.clear()

    def __enter__(self) -> FakeMcp:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()


# --- caller-hosted tool endpoint ------------------------------------------------------------------


@dataclass(frozen=True)
class ToolRequest:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class FakeToolEndpoint:
    def __init__(self) -> None:
        self.secret = "whsec-initial"
        self._verify = documented_verifier()
        self._lock = threading.Lock()
        self._requests: list[ToolRequest] = []
        app = Starlette(routes=[Route("/tools", self._handle, methods=["POST"])])
        self._server = ThreadedServer(app, name="fake-tool-endpoint")

    @property
    def url(self) -> str:
        return f"{self._server.url}/tools"

    def settings(self, secret: str | None = None) -> dict[str, Any]:
        """A `Settings.tool_endpoints` entry for this endpoint (with its current secret)."""
        return {"url": self.url, "secret": secret or self.secret}

    @property
    def requests(self) -> list[ToolRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
        self.secret = f"whsec-canary-{uuid.uuid4().hex}"

    def __enter__(self) -> FakeToolEndpoint:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        verified = self._verify(self.secret, request.headers, body)
        with self._lock:
            self._requests.append(
                ToolRequest({k.lower(): v for k, v in request.headers.items()}, body, verified)
            )
        if not verified:
            return JSONResponse({"error": "bad signature or timestamp"}, status_code=401)
        call = json.loads(body)
        args = call.get("args") or {}
        name = call.get("tool_name")
        if name == "lookup_order":
            return JSONResponse({"order_id": args.get("order_id"), "status": "shipped"})
        if name == "report":
            return JSONResponse({"text": "x" * int(args.get("size", 0))})
        if name == "fail":
            return PlainTextResponse("inventory database is down", status_code=500)
        if name == "huge_number":  # valid JSON, beyond the 64-bit integers orjson writes
            return Response(b'{"n": 123456789012345678901234567890}', media_type="application/json")
        if name == "deep":  # valid JSON, nested deeper than pydantic-ai serializes
            depth = int(args.get("depth", 300))
            return Response(b'{"a": ' * depth + b"1" + b"}" * depth, media_type="application/json")
        if name == "not_json":
            return PlainTextResponse("this is not json")
        if name == "slow":
            await asyncio.sleep(float(args.get("seconds", 1)))
            return JSONResponse({"slept": True})
        return JSONResponse({"error": f"no tool {name!r}"}, status_code=404)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_mcp_server() -> Iterator[FakeMcp]:
    with FakeMcp() as fake:
        yield fake


@pytest.fixture
def fake_mcp(fake_mcp_server: FakeMcp) -> Iterator[FakeMcp]:
    fake_mcp_server.reset()
    yield fake_mcp_server
    fake_mcp_server.reset()


@pytest.fixture(scope="session")
def tool_endpoint_server() -> Iterator[FakeToolEndpoint]:
    with FakeToolEndpoint() as fake:
        yield fake


@pytest.fixture
def tool_endpoint(tool_endpoint_server: FakeToolEndpoint) -> Iterator[FakeToolEndpoint]:
    tool_endpoint_server.reset()
    yield tool_endpoint_server
    tool_endpoint_server.reset()
