"""Post the `tools.mcp` example run with Strata's Python client and show what the tool did.

    STRATA_API_KEY=sk-strata-… .venv/bin/python examples/mcp/drive.py [http://127.0.0.1:8000]

Prints the run's status and output, then each tool call and tool result from its events. The
server must know the MCP server as `weather` (see examples/mcp/README.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from app.client import StrataClient

RUN = Path(__file__).with_name("weather-run.json")


def main() -> int:
    base_url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("STRATA_URL", "")
    with StrataClient(base_url or "http://127.0.0.1:8000", os.environ["STRATA_API_KEY"]) as client:
        run = client.create_run(json.loads(RUN.read_text()))
        run = client.wait_run(run.id, timeout_seconds=60)
        print(f"status: {run.status.value}")
        print(f"output: {json.dumps(run.output, ensure_ascii=False)}")
        for event in client.list_events(run.id, limit=500).items:
            if event.type == "tool_call":
                print(f"tool call: {event.data['tool_name']}({json.dumps(event.data['args'])})")
            elif event.type == "tool_result":
                print(f"tool result ({event.data['outcome']}): {event.data['content']}")
        return 0 if run.status.value == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
