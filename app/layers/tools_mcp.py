"""`tools.mcp`: the tools of an MCP server, reached over streamable HTTP.

Config `{server, tools?, tool_prefix?, timeout_seconds}`. `server` names an entry of the server's
`STRATA_MCP_SERVERS` (URL and headers; the headers are secrets and never leave the server
configuration); a request naming an unknown server is rejected with 422 `unknown_mcp_server`.

How it works:

- The client lives in the layer's `resource_context`: it connects (pydantic-ai's `MCPToolset`,
  built on the FastMCP client over the `mcp` SDK) when the layer enters, lists the server's tools,
  and disconnects when the layer exits. Nothing of the connection is kept in `runtime_state`, so
  the snapshot holds no MCP session, URL or header; a resumed session connects again.
- Each listed tool (only those in `tools` when that allow-list is given, named
  `<tool_prefix>_<name>` when a prefix is given) becomes a plain `pydantic_ai.Tool`
  (`Tool.from_schema` with the tool's own input schema), whose function calls
  `MCPToolset.direct_call_tool` on the live connection. That call needs no `RunContext`, so the
  tools work with any tool-calling loop, not only `Agent.run`, and the toolset is never handed to
  the agent itself.
- Tool errors follow pydantic-ai's MCP default (`tool_error_behavior="retry"`): an error from the
  server becomes `ModelRetry`, so the model sees the error message and may try again or answer
  without the tool. Arguments are validated by the server, not here.
- A server that cannot be reached (or lacks a tool the allow-list names) raises `ToolSetupError`
  while the layer enters: the run fails with `error_type` `tool_error` and a message naming the
  server by its configured name (never its URL).
- `timeout_seconds` bounds connecting and every request to the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from pydantic import Field, field_validator
from pydantic_ai import Tool

from app.compositor import LayerConfig, NoLayerDeps
from app.config import McpServerSettings
from app.layers.base import (
    AgentLayer,
    LayerCheckError,
    ServerCatalog,
    ToolSetupError,
    config_error,
)
from app.storable import storable

TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
PREFIX_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"


class McpToolsConfig(LayerConfig):
    """Tools from an MCP server configured on this server."""

    server: str = Field(
        min_length=1, max_length=128, description="An MCP server name from STRATA_MCP_SERVERS."
    )
    tools: list[str] | None = Field(
        default=None,
        max_length=256,
        description="Only these tools of the server (by the server's names); all when absent.",
    )
    tool_prefix: str | None = Field(
        default=None,
        pattern=PREFIX_PATTERN,
        description="Expose every tool as `<tool_prefix>_<name>` (to tell servers apart).",
    )
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Bound on connecting and on each request to the server (a tool call "
        "that takes longer is reported to the model as a tool error).",
    )

    @field_validator("tools")
    @classmethod
    def _unique_names(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        seen: set[str] = set()
        for name in names:
            if not 1 <= len(name) <= 128:
                raise config_error("invalid_tool_name", f"tool name {name!r}: 1 to 128 characters")
            if name in seen:
                raise config_error("duplicate_tool_name", f"tool {name!r} is listed twice")
            seen.add(name)
        return names


class McpToolsLayer(AgentLayer[NoLayerDeps, McpToolsConfig]):
    type_id = "tools.mcp"
    session_replayable = False
    config_error_codes = frozenset({"invalid_tool_name", "duplicate_tool_name"})

    def __init__(self, servers: Mapping[str, McpServerSettings] | None = None) -> None:
        super().__init__()
        self._servers = dict(servers or {})
        self._tools: list[Tool[Any]] = []

    @classmethod
    def check_config(cls, config: Any, catalog: ServerCatalog) -> None:
        if config.server not in catalog.mcp_servers:
            raise LayerCheckError(
                "unknown_mcp_server",
                f"MCP server {config.server!r} is not configured on this server",
                field="server",
            )

    @property
    def tools(self) -> Sequence[Tool[Any]]:
        return list(self._tools)

    def resource_context(self) -> AbstractAsyncContextManager[None]:
        return self._connected()

    @asynccontextmanager
    async def _connected(self) -> AsyncIterator[None]:
        from pydantic_ai.mcp import MCPToolset

        name = self.config.server
        server = self._servers.get(name)
        if server is None:
            raise ToolSetupError(
                f"MCP server {name!r} is not configured on this server", reason="unknown_mcp_server"
            )
        timeout = self.config.timeout_seconds
        toolset: MCPToolset[Any] = MCPToolset(
            server.url,
            id=name,
            headers={key: value.get_secret_value() for key, value in server.headers.items()}
            or None,
            init_timeout=timeout,
            read_timeout=timeout,
            tool_error_behavior="retry",
        )
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(toolset)
                listed = await toolset.list_tools()
            except Exception as error:
                raise ToolSetupError(
                    f"MCP server {name!r} is unreachable or failed to list its tools "
                    f"({_describe(error, server.url, name)})",
                    reason="mcp_server_unavailable",
                ) from error
            self._tools = self._select(toolset, listed)
            try:
                yield
            finally:
                self._tools = []

    def _select(self, toolset: Any, listed: Sequence[Any]) -> list[Tool[Any]]:
        by_name = {tool.name: tool for tool in listed}
        wanted = self.config.tools
        if wanted is not None:
            missing = [name for name in wanted if name not in by_name]
            if missing:
                raise ToolSetupError(
                    f"MCP server {self.config.server!r} does not offer the tool(s) {missing}; it "
                    f"offers {sorted(by_name)}",
                    reason="mcp_tool_missing",
                )
        names = wanted if wanted is not None else list(by_name)
        prefix = self.config.tool_prefix
        return [
            _mcp_tool(
                toolset,
                remote_name=name,
                exposed_name=f"{prefix}_{name}" if prefix else name,
                description=by_name[name].description,
                schema=dict(by_name[name].input_schema),
            )
            for name in names
        ]


def _mcp_tool(
    toolset: Any,
    *,
    remote_name: str,
    exposed_name: str,
    description: str | None,
    schema: dict[str, Any],
) -> Tool[Any]:
    async def call_mcp_tool(**arguments: Any) -> Any:
        return storable(await toolset.direct_call_tool(remote_name, arguments))

    return Tool.from_schema(
        call_mcp_tool, name=exposed_name, description=description, json_schema=schema
    )


def _describe(error: BaseException, url: str, name: str) -> str:
    """The innermost error's class and message, with the server's URL replaced by its name."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    root: BaseException = error
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).replace(url, f"<{name}>").strip()
    return f"{type(root).__name__}: {text}" if text else type(root).__name__
