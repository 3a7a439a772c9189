"""A bug is a 500 in the error shape on a connection that stays usable, and logs no row values."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx2
import pytest
import structlog

from app.logging import log_processors
from tests.api_fixtures import make_settings
from tests.failing_routes import FAILING_ROUTERS
from tests.server_fixtures import LiveServerFactory

CANARY = "canary-7c1d2e-row-value"


@pytest.fixture
def service_logs() -> Iterator[io.StringIO]:
    """The service's structlog output, rendered as JSON lines by its real processor chain."""
    buffer = io.StringIO()
    settings = make_settings("sqlite+aiosqlite://", log_format="json")
    structlog.configure(
        processors=log_processors(settings),
        logger_factory=structlog.PrintLoggerFactory(file=buffer),
        cache_logger_on_first_use=False,
    )
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


def test_a_500_keeps_the_keep_alive_connection_usable(
    live_server_factory: LiveServerFactory, service_logs: io.StringIO
) -> None:
    server = live_server_factory(routers=FAILING_ROUTERS)

    with httpx2.Client(base_url=server.base_url, timeout=10) as client:
        failed = client.get("/test/boom")
        after = client.get("/healthz")  # the same pooled connection

    assert failed.status_code == 500
    assert failed.json() == {
        "error": {"code": "internal_error", "message": "internal server error", "details": {}}
    }
    assert failed.headers.get("connection", "").lower() != "close"
    assert after.status_code == 200
    lines = [json.loads(line) for line in service_logs.getvalue().splitlines()]
    logged = [line for line in lines if line["event"] == "unhandled_error"]
    assert logged and logged[0]["error_class"] == "RuntimeError"
    assert "a bug in a route" in logged[0]["exception"]  # bugs keep their message


def test_a_failing_statement_logs_no_parameter(
    live_server_factory: LiveServerFactory, service_logs: io.StringIO
) -> None:
    server = live_server_factory(routers=FAILING_ROUTERS)

    with httpx2.Client(base_url=server.base_url, timeout=10) as client:
        failed = client.post("/test/duplicate-tenant", json={"name": CANARY})

    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "internal_error"
    logs = service_logs.getvalue()
    assert "unhandled_error" in logs and "IntegrityError" in logs, logs
    assert CANARY not in logs
