"""The service starts and answers: the app factory, `/healthz`, and the `strata` CLI."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.migrate import head_revision

REPO = Path(__file__).resolve().parent.parent


def test_healthz_answers_ok(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_settings_default_to_an_embedded_sqlite_file_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("STRATA_"):
            monkeypatch.delenv(name)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_settings_read_the_strata_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_PORT", "9123")
    monkeypatch.setenv(
        "STRATA_MODEL_PROVIDERS", '{"local": {"base_url": "http://x/v1", "api_key": "canary-9f3"}}'
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.port == 9123
    assert settings.model_providers["local"].base_url == "http://x/v1"
    assert "canary-9f3" not in repr(settings.model_providers)


def test_python_dash_m_app_is_the_strata_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("serve", "worker", "migrate", "keys"):
        assert command in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_strata_serve_on_a_fresh_file_migrates_prints_a_key_and_runs(tmp_path: Path) -> None:
    """The embedded default, as a new user starts it: no step before `strata serve`."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/s.db"
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx2.get(f"{base}/healthz", timeout=1)
                break
            except httpx2.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log_path.read_text()) from None
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert httpx2.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"

        key = re.search(r"sk-strata-[A-Za-z0-9_-]+", log_path.read_text())
        assert key is not None, log_path.read_text()
        headers = {"Authorization": f"Bearer {key.group(0)}"}
        body = json.loads((REPO / "examples" / "hello.json").read_text())
        created = httpx2.post(f"{base}/v1/runs", json=body, headers=headers, timeout=10)
        assert created.status_code == 202
        run = httpx2.get(
            f"{base}/v1/runs/{created.json()['id']}/wait",
            params={"timeout_seconds": 20},
            headers=headers,
            timeout=30,
        ).json()
        assert run["status"] == "succeeded"
        assert run["output"] == "echo #1: Say hello to Strata."
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_readyz_checks_the_database_schema(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory()
    response = api.client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["schema_revision"] == head_revision()


def test_readyz_is_503_on_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/empty.db")  # type: ignore[call-arg]
    with TestClient(create_app(settings, run_worker=False)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "schema_outdated"


def test_metrics_count_runs_by_status(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(metrics_token="operator-token")
    layers = [
        {"name": "prompt", "type": "plain.prompt", "config": {"user": "hi"}},
        {"name": "llm", "type": "llm.test"},
    ]
    empty = api.post_run({"composition": {"layers": layers[1:]}}).json()
    failed = api.wait(empty["id"])
    run = api.post_run({"composition": {"layers": layers}}).json()
    api.wait(run["id"])

    body = api.client.get("/metrics", headers={"Authorization": "Bearer operator-token"}).text

    assert failed["error_type"] == "invalid_run"
    assert failed["reason"] == "empty_user_prompt"
    assert 'strata_runs{status="succeeded"} 1.0' in body
    assert 'strata_runs{status="failed"} 1.0' in body
    assert "strata_queue_depth 0.0" in body
    assert 'strata_runs_finished_total{status="succeeded"} 1.0' in body
    assert "strata_run_duration_seconds_count 2.0" in body
    # the live workers (this app's own), each with the runs it executes now (none)
    assert "strata_workers_live 1.0" in body
    worker_line = next(
        line for line in body.splitlines() if line.startswith("strata_worker_runs_executing{")
    )
    assert worker_line.endswith(" 0.0")


def test_metrics_need_the_operator_token(api_factory) -> None:  # type: ignore[no-untyped-def]
    off = api_factory()
    on = api_factory(metrics_token="operator-token")

    disabled = off.client.get("/metrics", headers={"Authorization": "Bearer operator-token"})
    anonymous = on.client.get("/metrics")
    tenant_admin = on.client.get("/metrics", headers=on.headers())  # a tenant key is no token
    operator = on.client.get("/metrics", headers={"Authorization": "Bearer operator-token"})

    assert disabled.status_code == 404
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_metrics_token"
    assert tenant_admin.status_code == 401
    assert operator.status_code == 200
    assert "strata_queue_depth" in operator.text


def _strata(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app ARGS` (the `strata` CLI) with `env`, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_strata_bootstrap_prints_a_key_once(tmp_path: Path) -> None:
    env = {**os.environ, "STRATA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/b.db"}
    subprocess.run([sys.executable, "-m", "app", "migrate"], env=env, check=True, cwd=tmp_path)
    first = _strata(env, tmp_path, "bootstrap")
    second = _strata(env, tmp_path, "bootstrap")

    assert first.returncode == 0
    assert "sk-strata-" in first.stdout
    assert second.returncode == 0
    assert "sk-strata-" not in second.stdout
    created = _strata(env, tmp_path, "keys", "create", "--tenant", "acme", "--role", "runner")
    assert created.returncode == 0
    assert created.stdout.strip().startswith("sk-strata-")
    listed = _strata(env, tmp_path, "keys", "list")
    assert "tenant=acme" in listed.stdout and "tenant=default" in listed.stdout
    assert created.stdout.strip() not in listed.stdout


def test_a_key_is_created_while_a_server_holds_the_sqlite_write_lock(tmp_path: Path) -> None:
    database = tmp_path / "busy.db"
    env = {**os.environ, "STRATA_DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    subprocess.run([sys.executable, "-m", "app", "migrate"], env=env, check=True, cwd=tmp_path)
    # a busy server's writer holds the lock for far longer than SQLite's 100 ms busy timeout
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(3.0, holder.rollback)
    release.start()
    try:
        created = _strata(env, tmp_path, "keys", "create", "--tenant", "busy", "--role", "reader")
    finally:
        release.join()
        holder.close()

    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("sk-strata-")
    listed = _strata(env, tmp_path, "keys", "list")
    assert "tenant=busy" in listed.stdout


def test_openapi_describes_the_one_error_shape_on_every_route() -> None:
    app = create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:"))  # type: ignore[call-arg]
    spec = app.openapi()

    assert not [name for name in spec["components"]["schemas"] if "ValidationError" in name]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            if not path.startswith("/v1/"):
                continue
            for status in ("401", "422"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)


def test_an_unreachable_database_is_503_on_a_connection_that_stays_open() -> None:
    # nothing listens on port 1: every connection attempt is refused at once
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        db_connect_timeout_seconds=1,
    )
    with TestClient(create_app(settings, run_worker=False)) as client:
        headers = {"Authorization": "Bearer sk-strata-any"}
        first = client.get("/v1/runs", headers=headers)
        second = client.post("/v1/runs", json={}, headers=headers)
        ready = client.get("/readyz")

    assert first.status_code == 503
    assert first.json()["error"]["code"] == "database_unavailable"
    assert first.headers["Retry-After"] == "1"
    assert second.status_code in (422, 503)
    assert ready.status_code == 503
