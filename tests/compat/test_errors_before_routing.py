"""Errors answered outside the protocol's handlers still use its `{"detail": …}` shape under its
prefix: a bug (500), an unreachable database (503), a wrong method (405); `/v1` keeps its own."""

from __future__ import annotations

import httpx2
from fastapi import APIRouter
from fastapi.testclient import TestClient

from app.api.edge import StrataRoute
from app.api.roles import Public
from app.config import Settings
from app.main import create_app
from tests.compat.protocol import HTTPError
from tests.compat.support import PREFIX
from tests.server_fixtures import LiveServerFactory

failing = APIRouter(prefix=f"{PREFIX}/test", route_class=StrataRoute)


@failing.get("/boom", dependencies=[Public])
async def boom() -> None:
    raise RuntimeError("a bug under the prefix")


def test_a_bug_under_the_prefix_is_a_500_with_a_detail(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(routers=[failing])

    with httpx2.Client(base_url=server.base_url, timeout=10) as client:
        failed = client.get(f"{PREFIX}/test/boom")
        wrong_method = client.delete(f"{PREFIX}/runs", headers=server.headers())
        v1_wrong_method = client.delete("/v1/runs", headers=server.headers())

    assert failed.status_code == 500
    assert HTTPError.model_validate_json(failed.text).detail == "internal server error"
    assert "a bug" not in failed.text
    assert wrong_method.status_code == 405
    assert isinstance(HTTPError.model_validate_json(wrong_method.text).detail, str)
    assert v1_wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_an_unreachable_database_is_a_503_with_a_detail_and_retry_after() -> None:
    # nothing listens on port 1: every connection attempt is refused at once
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        db_connect_timeout_seconds=1,
    )
    with TestClient(create_app(settings, run_worker=False)) as client:
        headers = {"Authorization": "Bearer sk-strata-any"}
        status = client.get(f"{PREFIX}/runs/01936b2e-0000-7000-8000-000000000001", headers=headers)

    assert status.status_code == 503
    assert status.headers["Retry-After"] == "1"
    assert isinstance(HTTPError.model_validate_json(status.text).detail, str)
