"""`tools.http`: tools hosted by the caller (the workflow engine), called over signed HTTP.

Config `{endpoint, tools: [{name, description, parameters}], timeout_seconds}`. `endpoint` names
an entry of the server's `STRATA_TOOL_ENDPOINTS` (URL and HMAC secret); the request only names
it (422 `unknown_tool_endpoint` otherwise). The layer depends on an `execution_context` layer
(`deps: {"execution_context": "execution_context"}`), whose identity, with the run id the server
fills in, goes with every call.

A call is `POST <url>` with the JSON body `{run_id, tool_call_id, tool_name, args,
execution_context}` and the headers `X-Strata-Timestamp` (unix seconds) and
`X-Strata-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`; the JSON response body
is the tool's result. docs/tools-http.md is the protocol for implementers.

Invariants:

- Request checks (422): tool names match `TOOL_NAME_PATTERN` and are unique in the layer
  (`invalid_tool_name`, `duplicate_tool_name`); each `parameters` is a bounded object schema with
  local references only (`invalid_tool_parameters`, see `app.layers.json_schemas`).
- Arguments are not validated here: the schema tells the model what to send, and the endpoint
  owns the validation of what it receives (so no pattern from a request ever runs here).
- Failures of a call (transport error, timeout, non-2xx status, a body that is not JSON or is
  larger than `MAX_RESPONSE_BYTES`) are reported to the model as a failed tool result
  (`ToolFailed`): the model sees what went wrong and may go on; the run does not fail. Messages
  name the endpoint by its configured name, never its URL or secret.
- Every layer of a process shares one `httpx2.AsyncClient` (`SharedHttpClient`, owned by the
  registry); each call carries the layer's `timeout_seconds`, which bounds the whole call.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from pydantic_ai import RunContext, Tool, ToolFailed

from app import __version__
from app.compositor import LayerConfig, LayerDeps
from app.config import ToolEndpointSettings
from app.jsonschema_check import UNSUPPORTED_PATTERN
from app.layers.base import (
    AgentLayer,
    LayerCheckError,
    ServerCatalog,
    config_error,
)
from app.layers.execution_context import ExecutionContextLayer
from app.layers.json_schemas import object_schema_problem
from app.storable import nested_deeper_than, storable

TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
MAX_TOOLS = 64
MAX_RESPONSE_BYTES = 1_048_576
MAX_RESULT_DEPTH = 64
"""Levels of lists and objects a result may nest: pydantic-ai's serializer refuses deeper
values (about 250 levels) when the result is sent to the model or kept in the history, which
failed the whole run; a deeper result is a failed tool call instead, which the model sees."""
SIGNATURE_HEADER = "X-Strata-Signature"
TIMESTAMP_HEADER = "X-Strata-Timestamp"
_ERROR_EXCERPT_CHARS = 500
_NAME = re.compile(TOOL_NAME_PATTERN)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Strata-Signature` value: `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class SharedHttpClient:
    """One `httpx2.AsyncClient` for every caller-hosted tool call of a process.

    Created on first use (inside the event loop that uses it) and again after `aclose()`.
    """

    def __init__(self) -> None:
        self._client: httpx2.AsyncClient | None = None

    def get(self) -> httpx2.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx2.AsyncClient(
                follow_redirects=False,
                headers={"User-Agent": f"strata/{__version__}"},
                limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _no_arguments() -> dict[str, JsonValue]:
    return {"type": "object", "properties": {}}


class HttpToolSpec(BaseModel):
    """One tool the caller hosts."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"The tool's name, unique in the layer ({TOOL_NAME_PATTERN}).")
    description: str | None = Field(
        default=None, max_length=4000, description="Tells the model when and how to use it."
    )
    parameters: dict[str, JsonValue] = Field(
        default_factory=_no_arguments,
        description='A JSON schema with "type": "object" for the arguments (local #/$defs/ '
        "references only, at most 32 KiB and 32 levels deep); no arguments when absent.",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise config_error(
                "invalid_tool_name",
                f"tool name {name[:80]!r} must match {TOOL_NAME_PATTERN}",
            )
        return name

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
        problem = object_schema_problem(schema)
        if problem is not None:
            raise config_error(problem.code or "invalid_tool_parameters", problem.message)
        return schema


def unique_tool_names(cls: Any, tools: list[HttpToolSpec]) -> list[HttpToolSpec]:
    """Field validator of a layer's `tools`: each name at most once (`duplicate_tool_name`)."""
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise config_error("duplicate_tool_name", f"tool {tool.name!r} is defined twice")
        seen.add(tool.name)
    return tools


class HttpToolsConfig(LayerConfig):
    """Tools the caller hosts behind a tool endpoint configured on this server."""

    endpoint: str = Field(
        min_length=1,
        max_length=128,
        description="A tool endpoint name from STRATA_TOOL_ENDPOINTS.",
    )
    tools: list[HttpToolSpec] = Field(
        min_length=1, max_length=MAX_TOOLS, description="The tools, as the model sees them."
    )
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Bound on one call, from connecting to the last byte of the response.",
    )

    _unique_names = field_validator("tools")(unique_tool_names)


class HttpToolsDeps(LayerDeps):
    execution_context: ExecutionContextLayer


class HttpToolsLayer(AgentLayer[HttpToolsDeps, HttpToolsConfig]):
    type_id = "tools.http"
    session_replayable = False
    config_error_codes = frozenset(
        {"invalid_tool_name", "duplicate_tool_name", "invalid_tool_parameters", UNSUPPORTED_PATTERN}
    )

    def __init__(
        self,
        endpoints: Mapping[str, ToolEndpointSettings] | None = None,
        client: SharedHttpClient | None = None,
    ) -> None:
        super().__init__()
        self._endpoints = dict(endpoints or {})
        self._client = client or SharedHttpClient()

    @classmethod
    def check_config(cls, config: Any, catalog: ServerCatalog) -> None:
        if config.endpoint not in catalog.tool_endpoints:
            raise LayerCheckError(
                "unknown_tool_endpoint",
                f"tool endpoint {config.endpoint!r} is not configured on this server",
                field="endpoint",
            )

    @property
    def tools(self) -> Sequence[Tool[Any]]:
        return [self._tool(spec) for spec in self.config.tools]

    def _tool(self, spec: HttpToolSpec) -> Tool[Any]:
        tool_name = spec.name

        # Positional-only context: an argument the model sends may be called `ctx` too.
        async def call_http_tool(ctx: RunContext[Any], /, **arguments: Any) -> Any:
            return await self.call(tool_name, ctx.tool_call_id or "", arguments)

        return Tool.from_schema(
            call_http_tool,
            name=tool_name,
            description=spec.description,
            json_schema=dict(spec.parameters),
            takes_ctx=True,
        )

    async def call(self, tool_name: str, tool_call_id: str, arguments: dict[str, Any]) -> Any:
        """POST one call to the endpoint and return the decoded JSON result.

        Raises `ToolFailed` (reported to the model) for every way the call can fail.
        """
        name = self.config.endpoint
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise ToolFailed(f"the tool endpoint {name!r} is not configured on this server")
        identity = self.deps.execution_context.identity()
        body = json.dumps(
            {
                "run_id": identity.get("run_id"),
                "tool_call_id": tool_call_id,
                "tool_name": tool_name,
                "args": arguments,
                "execution_context": identity,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(endpoint.secret.get_secret_value(), timestamp, body),
        }
        timeout = self.config.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                status, content = await self._post(endpoint.url, body, headers, timeout)
        except (TimeoutError, httpx2.TimeoutException):
            raise ToolFailed(
                f"the tool endpoint {name!r} did not answer within {timeout:g} seconds"
            ) from None
        except _TooLarge:
            raise ToolFailed(
                f"the tool endpoint {name!r} answered with more than {MAX_RESPONSE_BYTES} bytes"
            ) from None
        except httpx2.HTTPError as error:
            raise ToolFailed(
                f"the tool endpoint {name!r} could not be reached ({type(error).__name__})"
            ) from None
        if not 200 <= status < 300:
            excerpt = content[:_ERROR_EXCERPT_CHARS].decode("utf-8", errors="replace").strip()
            detail = f": {excerpt}" if excerpt else ""
            raise ToolFailed(f"the tool endpoint {name!r} answered HTTP {status}{detail}")
        too_deep = (
            f"the tool endpoint {name!r} answered with JSON nested deeper than "
            f"{MAX_RESULT_DEPTH} levels"
        )
        try:
            result = json.loads(content, parse_constant=_reject_constant)
        except RecursionError:  # deeper than the parser goes (about a thousand levels)
            raise ToolFailed(too_deep) from None
        except ValueError:
            raise ToolFailed(
                f"the tool endpoint {name!r} answered with a body that is not JSON"
            ) from None
        if nested_deeper_than(result, MAX_RESULT_DEPTH):
            raise ToolFailed(too_deep)
        return storable(result)

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        client = self._client.get()
        async with client.stream(
            "POST", url, content=body, headers=headers, timeout=httpx2.Timeout(timeout)
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise _TooLarge
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, and no JSON column can store them.
    raise ValueError(f"{name} is not JSON")


class _TooLarge(Exception):
    """The response body exceeded `MAX_RESPONSE_BYTES`."""
