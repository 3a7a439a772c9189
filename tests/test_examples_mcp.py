"""The MCP example (examples/mcp) works as its README says, against a live server."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.server_fixtures import LiveServerFactory
from tests.test_cli_runs import strata
from tests.threaded_server import ThreadedServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mcp"


def _example_server_app() -> Any:
    spec = importlib.util.spec_from_file_location("weather_server", EXAMPLE / "weather_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_server().streamable_http_app()


def test_the_mcp_example_runs_as_documented(live_server_factory: LiveServerFactory) -> None:
    with ThreadedServer(_example_server_app(), name="example-mcp", lifespan="on") as mcp:
        server = live_server_factory(mcp_servers={"weather": {"url": f"{mcp.url}/mcp"}})

        created = strata(server, "create", "examples/mcp/weather-run.json", "--wait")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        driven = subprocess.run(
            [sys.executable, str(EXAMPLE / "drive.py"), server.base_url],
            env={**env, "STRATA_API_KEY": server.key},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert created.returncode == 0, created.stderr
    run = json.loads(created.stdout)
    assert run["status"] == "succeeded"
    assert run["output"] == "Sunny in Lisbon, 24°C, for the next two days."
    assert driven.returncode == 0, driven.stderr
    readme = (EXAMPLE / "README.md").read_text()
    [documented] = re.findall(r"`drive.py` prints:\n\n```\n(.*?)```", readme, flags=re.DOTALL)
    assert driven.stdout == documented
