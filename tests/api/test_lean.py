"""The lean solver of the hot routes answers exactly as FastAPI's own solver does."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, Query

from app.api.edge import StrataRoute
from app.api.lean import LeanSolver, lean
from app.api.roles import Reader
from app.models import ApiKeyRole
from tests.api_fixtures import Api, ApiFactory, create_key
from tests.normalize import without_ids_and_times
from tests.runs.bodies import chat


def _exchanges(api: Api, tag: str) -> list[tuple[str, int, Any]]:
    """The same requests, valid and not, each answered: (what, status, normalized body)."""
    reader = create_key(api.database_url, "t1", ApiKeyRole.READER).key
    body = chat("hi")
    raw = json.dumps(body)
    requests: list[tuple[str, str, str, dict[str, Any]]] = [
        ("create", "POST", "/v1/runs", {"json": body, "headers": api.headers()}),
        (
            "create with a key",
            "POST",
            "/v1/runs",
            {"json": body, "headers": {**api.headers(), "Idempotency-Key": f"key-{tag}"}},
        ),
        (
            "replay of that key",
            "POST",
            "/v1/runs",
            {"json": body, "headers": {**api.headers(), "Idempotency-Key": f"key-{tag}"}},
        ),
        (
            "empty key",
            "POST",
            "/v1/runs",
            {"json": body, "headers": {**api.headers(), "Idempotency-Key": ""}},
        ),
        (
            "key too long",
            "POST",
            "/v1/runs",
            {"json": body, "headers": {**api.headers(), "Idempotency-Key": "k" * 256}},
        ),
        (
            "invalid body",
            "POST",
            "/v1/runs",
            {"json": {"composition": 1}, "headers": api.headers()},
        ),
        (
            "body not an object",
            "POST",
            "/v1/runs",
            {"json": ["composition"], "headers": api.headers()},
        ),
        (
            "JSON with a charset",
            "POST",
            "/v1/runs",
            {
                "content": raw,
                "headers": {**api.headers(), "Content-Type": "application/json; charset=utf-8"},
            },
        ),
        (
            "a +json type",
            "POST",
            "/v1/runs",
            {"content": raw, "headers": {**api.headers(), "Content-Type": "application/x+json"}},
        ),
        (
            "text/plain",
            "POST",
            "/v1/runs",
            {"content": raw, "headers": {**api.headers(), "Content-Type": "text/plain"}},
        ),
        ("no body", "POST", "/v1/runs", {"headers": api.headers()}),
        ("no key", "POST", "/v1/runs", {"json": body}),
        ("reader key", "POST", "/v1/runs", {"json": body, "headers": api.headers(reader)}),
    ]
    answers: list[tuple[str, int, Any]] = []
    created: list[str] = []
    for what, method, path, options in requests:
        response = api.client.request(method, path, **options)
        answer = json.loads(response.text.replace(f"key-{tag}", "key-<tag>"))
        answers.append((what, response.status_code, without_ids_and_times(answer)))
        if response.status_code == 202:
            created.append(response.json()["id"])
    run_id = created[0]
    waits: list[tuple[str, str, dict[str, Any]]] = [
        ("wait", f"/v1/runs/{run_id}/wait", {"timeout_seconds": 10}),
        ("wait, default timeout", f"/v1/runs/{run_id}/wait", {}),
        ("wait, upper-case id", f"/v1/runs/{run_id.upper()}/wait", {"timeout_seconds": 10}),
        ("wait, reader key", f"/v1/runs/{run_id}/wait", {"timeout_seconds": 10, "_key": reader}),
        ("wait, zero timeout", f"/v1/runs/{run_id}/wait", {"timeout_seconds": 0}),
        ("wait, negative timeout", f"/v1/runs/{run_id}/wait", {"timeout_seconds": -1}),
        ("wait, timeout not a number", f"/v1/runs/{run_id}/wait", {"timeout_seconds": "x"}),
        ("wait, empty timeout", f"/v1/runs/{run_id}/wait", {"timeout_seconds": ""}),
        ("wait, id not a uuid", "/v1/runs/not-a-uuid/wait", {}),
        ("wait, unknown run", f"/v1/runs/{uuid.uuid4()}/wait", {"timeout_seconds": 0}),
        ("wait, unknown parameter", f"/v1/runs/{run_id}/wait", {"timeout": 1}),
    ]
    for what, path, query in waits:
        key = query.pop("_key", None)
        response = api.client.get(path, params=query, headers=api.headers(key))
        answers.append((what, response.status_code, without_ids_and_times(response.json())))
    response = api.client.get(f"/v1/runs/{run_id}/wait", params={"timeout_seconds": 10})
    answers.append(("wait, no key", response.status_code, without_ids_and_times(response.json())))
    return answers


async def page(limit: Annotated[int, Query()] = 10) -> int:
    return limit


async def session() -> AsyncIterator[int]:
    yield 1


@pytest.fixture
def lean_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each lean solve gave the handler its arguments (False: FastAPI answered)."""
    solved: list[bool] = []
    solve = LeanSolver.solve

    async def counting(self: LeanSolver, request: Any, json_body: Any) -> Any:
        arguments = await solve(self, request, json_body)
        solved.append(arguments is not None)
        return arguments

    monkeypatch.setattr(LeanSolver, "solve", counting)
    return solved


def test_the_hot_routes_answer_as_fastapi_does(
    api_factory: ApiFactory, lean_answers: list[bool]
) -> None:
    # no worker: every run stays queued, so both passes see the same states (a wait answers
    # the queued run at its deadline, capped at 0.2 s)
    api = api_factory(run_worker=False, wait_max_seconds=0.2)
    through_lean = _exchanges(api, "lean")
    lean_count = lean_answers.count(True)

    async def never(self: LeanSolver, request: Any, json_body: Any) -> None:
        return None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LeanSolver, "solve", never)
        through_fastapi = _exchanges(api, "fastapi")

    assert through_lean == through_fastapi
    statuses = {what: status for what, status, _ in through_lean}
    assert statuses["create"] == 202 and statuses["replay of that key"] == 200
    assert statuses["a +json type"] == 202 and statuses["JSON with a charset"] == 202
    assert statuses["text/plain"] == 422 and statuses["key too long"] == 422
    assert statuses["wait"] == 200 and statuses["wait, upper-case id"] == 200
    bodies = {what: body for what, _, body in through_lean}
    assert bodies["wait"]["status"] == bodies["wait, default timeout"]["status"] == "queued"
    assert statuses["wait, negative timeout"] == 422 and statuses["wait, id not a uuid"] == 422
    assert statuses["no key"] == 401 and statuses["reader key"] == 403
    assert statuses["wait, unknown run"] == 404
    # the lean path served every valid request but the `+json` one: 4 creates, 6 waits
    assert lean_count == 4 + 6


def test_a_lean_route_whose_tree_it_cannot_solve_is_not_built() -> None:
    router = APIRouter(route_class=StrataRoute)

    with pytest.raises(TypeError, match="takes parameters or dependencies of its own"):

        @router.get("/paged")
        @lean
        async def paged(principal: Reader, size: Annotated[int, Depends(page)]) -> Any:
            return None

    with pytest.raises(TypeError, match="not a plain async function"):

        @router.get("/with-session")
        @lean
        async def with_session(principal: Reader, db: Annotated[int, Depends(session)]) -> Any:
            return None

    with pytest.raises(TypeError, match="is not a plain value"):

        @router.get("/listed")
        @lean
        async def listed(principal: Reader, ids: Annotated[list[str], Query()]) -> Any:
            return None
