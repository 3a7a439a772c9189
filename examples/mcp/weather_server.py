"""A small MCP server for the `tools.mcp` example: weather tools over streamable HTTP.

Run it, then point Strata at it (see examples/mcp/README.md):

    .venv/bin/python examples/mcp/weather_server.py            # serves http://127.0.0.1:8765/mcp
    .venv/bin/python examples/mcp/weather_server.py --port 9001

It uses the `mcp` SDK (installed with Strata). Both tools are deterministic, so the example's
answers can be checked.
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

FORECASTS = {"lisbon": "sunny, 24°C", "oslo": "snow, -3°C", "paris": "light rain, 12°C"}


def build_server() -> MCPServer:
    server = MCPServer("weather", log_level="WARNING")

    @server.tool()
    def forecast(city: str, days: int = 1) -> str:
        """The weather forecast of a city for the next days (1 to 7)."""
        weather = FORECASTS.get(city.lower())
        if weather is None:
            raise ToolError(f"no forecast for {city!r}; known cities: {sorted(FORECASTS)}")
        if not 1 <= days <= 7:
            raise ToolError("days must be between 1 and 7")
        return f"{city}: {weather} for the next {days} day(s)"

    @server.tool()
    def cities() -> list[str]:
        """The cities this service has forecasts for."""
        return sorted(FORECASTS)

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    app = build_server().streamable_http_app()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
