"""examples/workflow_engine.py runs green against a server started the way the README says.

`strata serve` in a subprocess on a free port with a fresh SQLite file (what `./scripts/serve`
runs), a `runner` key from `strata keys create` as the script's docstring says, then the script
itself: it must exit 0 and print exactly the transcript docs/workflow-engines.md shows. The
server is always on SQLite here, whatever the suite's database: it is the embedded default a
new user starts.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "workflow_engine.py"
GUIDE = REPO / "docs" / "workflow-engines.md"
STARTUP_SECONDS = 60.0


def _strata() -> list[str]:
    """The `strata` command of this environment (its console script, as the README runs it)."""
    script = Path(sys.executable).with_name("strata")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A `strata serve` process on a fresh SQLite file: its base URL and environment."""
    env = _environment(tmp_path / "strata.db")
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*_strata(), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx2.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"strata serve did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield base_url, env
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_workflow_engine_example_prints_what_the_guide_shows(
    served: tuple[str, dict[str, str]],
) -> None:
    base_url, env = served
    key = subprocess.run(
        [*_strata(), "keys", "create", "--tenant", "default", "--role", "runner"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert key.startswith("sk-strata-")

    result = subprocess.run(
        [sys.executable, str(SCRIPT), base_url],
        env={**env, "STRATA_API_KEY": key},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    [documented] = re.findall(r"and prints:\n\n```\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert result.stdout == documented


def test_the_workflow_engine_example_fails_loudly_without_a_server(tmp_path: Path) -> None:
    """An unexpected outcome (here: nothing listens) exits 1 with the reason on stderr."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), f"http://127.0.0.1:{_free_port()}", "--api-key", "k"],
        env=_environment(tmp_path / "unused.db"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("unexpected: ")
