"""HTTP fixtures: a running app (API + in-process worker) on this test's database, and a client.

`api` starts the application with Starlette's `TestClient` (lifespan included, so the worker
runs in the client's event loop thread) and creates a tenant with an admin key. Its `client`
sends that key on every request. Worker timings are shortened so tests finish quickly; they are
settings, like in production.

Test-only layer types (`tests.layer_types`) are registered on top of the built-in allow-list,
the same way an embedder adds its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import create_engine, create_session_factory, retry_while_busy, unit_of_work
from app.keys import IssuedKey, issue_key
from app.main import create_app
from app.models import ApiKeyRole
from tests.db_fixtures import run_coroutine_blocking
from tests.layer_types import TEST_LAYER_PROVIDERS


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "worker_poll_seconds": 0.5,
        "heartbeat_seconds": 0.5,
        "lease_seconds": 5.0,
        "sweep_seconds": 0.5,
        "shutdown_grace_seconds": 5.0,
        "event_text_flush_seconds": 0.02,
        "log_format": "console",
        "log_level": "warning",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def create_key(database_url: str, tenant: str, role: ApiKeyRole = ApiKeyRole.ADMIN) -> IssuedKey:
    """A new key of `tenant` (created when missing), admin unless `role` says otherwise."""

    async def _issue() -> IssuedKey:
        engine = create_engine(database_url)
        factory = create_session_factory(engine)

        async def attempt() -> IssuedKey:
            async with unit_of_work(factory) as session:
                return await issue_key(session, tenant, role=role)

        try:
            # SQLite: the started app's writer may hold the write lock (its start-up writes)
            return await retry_while_busy(attempt)
        finally:
            await engine.dispose()

    return run_coroutine_blocking(_issue)


@dataclass
class Api:
    """A started app and a client authenticated as tenant `t1`."""

    client: TestClient
    key: str
    database_url: str
    settings: Settings
    stopped: bool = False

    def stop(self) -> None:
        """Shut the app down now (lifespan exit: the worker stops as on SIGTERM)."""
        if not self.stopped:
            self.stopped = True
            self.client.__exit__(None, None, None)

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def post_run(self, body: dict[str, Any], **kwargs: Any) -> Any:
        return self.client.post("/v1/runs", json=body, headers=self.headers(), **kwargs)

    def wait(self, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/runs/{run_id}/wait",
            params={"timeout_seconds": timeout},
            headers=self.headers(),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def run_to_end(self, body: dict[str, Any]) -> dict[str, Any]:
        created = self.post_run(body)
        assert created.status_code == 202, created.text
        return self.wait(created.json()["id"])

    def events(self, run_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/v1/runs/{run_id}/events", params={"limit": 500}, headers=self.headers()
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


ApiFactory = Callable[..., Api]
"""`api_factory(run_worker=True, **settings_overrides)` starts one more app."""


@pytest.fixture
def api_factory(database_url: str) -> Iterator[ApiFactory]:
    """Start apps on this test's database; every started app is stopped after the test."""
    apps: list[Api] = []

    def start(*, run_worker: bool = True, **overrides: Any) -> Api:
        settings = make_settings(database_url, **overrides)
        app = create_app(
            settings, run_worker=run_worker, extra_layer_providers=TEST_LAYER_PROVIDERS
        )
        client = TestClient(app)
        client.__enter__()
        key = create_key(database_url, "t1")
        started = Api(client=client, key=key.key, database_url=database_url, settings=settings)
        apps.append(started)
        return started

    yield start
    for started in reversed(apps):
        started.stop()


@pytest.fixture
def api(api_factory: ApiFactory) -> Api:
    return api_factory()
