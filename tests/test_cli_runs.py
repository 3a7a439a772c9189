"""`strata runs …` against a live server, as the README's quick start uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.server_fixtures import LiveServer

REPO = Path(__file__).resolve().parent.parent


def strata(
    server: LiveServer, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_URL"] = server.base_url
    env["STRATA_API_KEY"] = key or server.key
    return subprocess.run(
        [sys.executable, "-m", "app", "runs", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_quick_start_creates_a_run_and_resumes_it(live_server: LiveServer) -> None:
    first = strata(live_server, "create", "examples/hello.json", "--wait")
    assert first.returncode == 0, first.stderr
    run: dict[str, Any] = json.loads(first.stdout)
    assert run["status"] == "succeeded"
    assert run["output"] == "echo #1: Say hello to Strata."

    second = strata(
        live_server, "create", "examples/follow-up.json", "--resume-from", run["id"], "--wait"
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["output"] == "echo #2: What did I ask before?"

    events = strata(live_server, "events", run["id"])
    assert events.returncode == 0, events.stderr
    kinds = [json.loads(line)["type"] for line in events.stdout.splitlines()]
    assert kinds[0] == "run_queued"
    assert kinds[-1] == "run_succeeded"

    shown = strata(live_server, "get", run["id"])
    assert json.loads(shown.stdout)["id"] == run["id"]


def test_the_structured_example_returns_json(live_server: LiveServer) -> None:
    result = strata(live_server, "create", "examples/structured.json", "--wait")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == {"city": "Lisbon", "days": 2}


def test_errors_are_reported_with_their_code_and_a_failing_exit(
    live_server: LiveServer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"composition": {"layers": [{"name": "llm", "type": "nope"}]}}))

    invalid = strata(live_server, "create", str(bad))
    unauthorized = strata(live_server, "get", "00000000-0000-0000-0000-000000000000", key="x")

    assert invalid.returncode == 1
    assert "422 unknown_layer_type" in invalid.stderr
    assert unauthorized.returncode == 1
    assert "401 invalid_api_key" in unauthorized.stderr
