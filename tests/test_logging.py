"""What a real `strata serve` process writes on stderr: one format for every line.

With `STRATA_LOG_FORMAT=json` (the default) every line is one JSON object: Alembic's and
uvicorn's lines (startup, shutdown) as well as Strata's own events and the access log, which
carries the request id (the caller's or a generated one), the tenant on authenticated requests
and the run on run routes. The admin key printed on first start goes to stdout, never to stderr.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Serve:
    process: subprocess.Popen[str]
    base_url: str
    stdout: Path
    stderr: Path

    def key(self) -> str:
        found = re.search(r"sk-strata-[A-Za-z0-9_-]+", self.stdout.read_text())
        assert found is not None, self.stdout.read_text()
        return found.group(0)

    def stop(self) -> list[str]:
        """SIGTERM, wait for the exit, and return the stderr lines."""
        self.process.send_signal(signal.SIGTERM)
        # uvicorn exits through the signal it handled once shutdown is complete
        assert self.process.wait(timeout=30) in (0, -signal.SIGTERM), self.stderr.read_text()
        return self.stderr.read_text().splitlines()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[Any]:
    """Start `strata serve` on a fresh SQLite file with the given log format."""
    started: list[Serve] = []

    def start(log_format: str) -> Serve:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        env.update(
            STRATA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/{log_format}.db",
            STRATA_LOG_FORMAT=log_format,
            STRATA_LOG_LEVEL="info",
        )
        stdout, stderr = tmp_path / f"{log_format}.out", tmp_path / f"{log_format}.err"
        with stdout.open("w") as out, stderr.open("w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=err,
                text=True,
            )
        serve = Serve(process, f"http://127.0.0.1:{port}", stdout, stderr)
        started.append(serve)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"{serve.base_url}/healthz", timeout=1)
                return serve
            except httpx2.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(stderr.read_text()) from None
                time.sleep(0.1)

    yield start
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait(timeout=10)


def test_every_stderr_line_of_strata_serve_is_one_json_object(start_serve: Any) -> None:
    serve = start_serve("json")
    base, key = serve.base_url, serve.key()
    auth = {"Authorization": f"Bearer {key}"}

    sent = httpx2.get(f"{base}/healthz", headers={"X-Request-ID": "probe-7"})
    generated = httpx2.get(f"{base}/healthz").headers["X-Request-ID"]
    body = json.loads((REPO / "examples" / "hello.json").read_text())
    created = httpx2.post(f"{base}/v1/runs", json=body, headers=auth, timeout=10)
    run_id = created.json()["id"]
    waited = httpx2.get(
        f"{base}/v1/runs/{run_id}/wait", params={"timeout_seconds": 20}, headers=auth, timeout=30
    )
    missing = httpx2.get(f"{base}/v1/runs/{uuid.uuid4()}", headers=auth)
    invalid = httpx2.post(f"{base}/v1/runs", json={"composition": 1}, headers=auth)
    lines = serve.stop()

    assert (sent.headers["X-Request-ID"], waited.json()["status"]) == ("probe-7", "succeeded")
    assert (missing.status_code, invalid.status_code) == (404, 422)
    records = [json.loads(line) for line in lines]  # every line, or this raises
    assert all(isinstance(record, dict) for record in records)
    assert all({"event", "level", "timestamp"} <= set(record) for record in records)
    assert key not in "\n".join(lines)

    from_libraries = {(r.get("logger"), r["event"]) for r in records if r.get("logger")}
    assert ("uvicorn.error", "Application startup complete.") in from_libraries
    assert ("uvicorn.error", "Application shutdown complete.") in from_libraries
    assert any(logger == "alembic.runtime.migration" for logger, _ in from_libraries)
    assert any(r["event"] == "worker_started" for r in records)

    access = [r for r in records if r["event"] == "http_request"]
    by_id = {r["request_id"]: r for r in access}
    assert by_id["probe-7"]["path"] == "/healthz"
    assert by_id[generated]["status"] == 200
    assert "tenant_id" not in by_id[generated]
    create, wait, not_found, rejected = access[-4:]
    assert (create["method"], create["path"], create["status"]) == ("POST", "/v1/runs", 202)
    assert create["run_id"] == run_id
    uuid.UUID(create["tenant_id"])
    assert (wait["run_id"], wait["tenant_id"]) == (run_id, create["tenant_id"])
    assert (not_found["status"], rejected["status"]) == (404, 422)
    assert "run_id" not in rejected and rejected["tenant_id"] == create["tenant_id"]
    assert all(isinstance(r["duration_ms"], float) for r in access)
    assert len({r["request_id"] for r in access}) == len(access)


def test_console_format_writes_lines_for_people(start_serve: Any) -> None:
    serve = start_serve("console")
    httpx2.get(f"{serve.base_url}/healthz", headers={"X-Request-ID": "people-1"})
    lines = serve.stop()

    access = [line for line in lines if "request_id=people-1" in line]
    assert len(access) == 1
    assert "http_request" in access[0] and "path=/healthz" in access[0]
    assert any("Application startup complete." in line for line in lines)
    assert not any(line.startswith("{") for line in lines)
