"""`close_workflow_run` and `get_workflow_run` of both clients, against a real server."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from app.client import (
    AsyncStrataClient,
    StrataAPIError,
    StrataClient,
    WorkflowRunCloseReport,
    WorkflowRunRead,
)
from app.models import RunStatus, RuntimeSessionStatus, WorkflowRunStatus
from app.sessions.schemas import RetireResult
from tests.client.support import run_body
from tests.server_fixtures import LiveServer


def scoped(workflow_run_id: str, node_id: str, **llm: Any) -> dict[str, Any]:
    """A run on the session of `node_id` in `workflow_run_id`."""
    body = run_body(**llm)
    body["session"] = {
        "app_id": "app-1",
        "workflow_id": "wf-1",
        "workflow_run_id": workflow_run_id,
        "node_id": node_id,
        "node_execution_id": "exec-1",
        "binding_id": "binding-1",
        "agent_id": "agent-1",
        "agent_config_snapshot_id": "snap-1",
    }
    return body


def until_running(client: StrataClient, run_id: uuid.UUID) -> None:
    deadline = time.monotonic() + 15
    while client.get_run(run_id).status is not RunStatus.RUNNING:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


def test_close_cancels_in_flight_and_get_shows_the_closed_workflow_run(
    live_server: LiveServer,
) -> None:
    client = live_server.client()
    done = client.wait_run(client.create_run(scoped("wr-sdk", "done")).id, timeout_seconds=20)
    busy = client.create_run(scoped("wr-sdk", "busy", latency_seconds=30))
    until_running(client, busy.id)
    shown = client.get_workflow_run("wr-sdk")
    assert isinstance(shown, WorkflowRunRead)
    assert shown.status is WorkflowRunStatus.OPEN
    assert [run.run_id for run in shown.runs_in_flight] == [busy.id]

    report = client.close_workflow_run("wr-sdk", cancel_in_flight=True, wait_seconds=20)

    assert isinstance(report, WorkflowRunCloseReport)
    assert report.status is WorkflowRunStatus.CLOSED
    assert report.cancelled_run_ids == [busy.id]
    assert report.active_sessions == 0
    results = {entry.node_id: entry.result for entry in report.reports}
    assert results == {"done": RetireResult.CLEANED, "busy": RetireResult.CLEANED}
    by_node = {entry.node_id: entry for entry in report.reports}
    assert by_node["busy"].last_run_id == busy.id
    assert by_node["done"].last_run_id == done.id
    assert client.get_run(busy.id).status is RunStatus.CANCELLED

    closed = client.get_workflow_run("wr-sdk", limit=1)
    assert closed.status is WorkflowRunStatus.CLOSED
    assert closed.closed_at == report.closed_at
    assert len(closed.sessions) == 1 and closed.next_cursor is not None
    rest = client.get_workflow_run("wr-sdk", cursor=closed.next_cursor)
    assert {s.status for s in closed.sessions + rest.sessions} == {RuntimeSessionStatus.CLEANED}

    with pytest.raises(StrataAPIError) as refused:
        client.create_run(scoped("wr-sdk", "done"))
    assert (refused.value.status_code, refused.value.code) == (409, "workflow_run_closed")
    with pytest.raises(StrataAPIError) as missing:
        client.get_workflow_run("wr-never")
    assert (missing.value.status_code, missing.value.code) == (404, "workflow_run_not_found")


async def test_the_async_client_closes_again_until_nothing_is_active(
    live_server: LiveServer,
) -> None:
    async with live_server.async_client() as client:
        assert isinstance(client, AsyncStrataClient)
        run = await client.create_run(scoped("wr-async", "slow", latency_seconds=2))
        deadline = time.monotonic() + 15
        while (await client.get_run(run.id)).status is not RunStatus.RUNNING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        first = await client.close_workflow_run("wr-async", wait_seconds=0.1)
        assert [entry.result for entry in first.reports] == [RetireResult.STILL_RUNNING]
        assert first.reports[0].current_run_id == run.id
        assert first.active_sessions == 1

        second = await client.close_workflow_run("wr-async", wait_seconds=20)
        assert [entry.result for entry in second.reports] == [RetireResult.CLEANED]
        assert second.active_sessions == 0
        assert second.closed_at == first.closed_at
        assert (await client.get_run(run.id)).status is RunStatus.SUCCEEDED
        shown = await client.get_workflow_run("wr-async")
        assert shown.status is WorkflowRunStatus.CLOSED
        assert shown.runs_in_flight == []

        with pytest.raises(StrataAPIError) as bad:
            await client.close_workflow_run("wr-async", wait_seconds=-1)
        assert (bad.value.status_code, bad.value.code) == (422, "request_invalid")


def test_a_reader_key_cannot_close(live_server: LiveServer) -> None:
    from app.models import ApiKeyRole
    from tests.api_fixtures import create_key

    client = live_server.client()
    client.wait_run(client.create_run(scoped("wr-r", "n")).id, timeout_seconds=20)
    reader = live_server.client(create_key(live_server.database_url, "t1", ApiKeyRole.READER).key)

    with pytest.raises(StrataAPIError) as refused:
        reader.close_workflow_run("wr-r")
    assert (refused.value.status_code, refused.value.code) == (403, "forbidden")
    assert reader.get_workflow_run("wr-r").status is WorkflowRunStatus.OPEN


def test_list_runs_filters_by_workflow_run_node_session_and_time(live_server: LiveServer) -> None:
    client = live_server.client()
    first = client.wait_run(client.create_run(scoped("W1", "a")).id, timeout_seconds=20)
    second = client.wait_run(client.create_run(scoped("W1", "b")).id, timeout_seconds=20)
    other = client.wait_run(client.create_run(scoped("W2", "a")).id, timeout_seconds=20)
    plain = client.wait_run(client.create_run(run_body()).id, timeout_seconds=20)

    in_w1 = [run.id for run in client.iter_runs(workflow_run_id="W1", page_size=1)]
    assert in_w1 == [second.id, first.id]
    assert [run.id for run in client.iter_runs(node_id="a")] == [other.id, first.id]
    only = client.list_runs(workflow_run_id="W1", node_id="b", status="succeeded")
    assert [run.id for run in only.items] == [second.id]
    assert [run.id for run in client.iter_runs(session_id=first.session_id)] == [first.id]
    since = client.list_runs(created_after=other.created_at, limit=10)
    assert [run.id for run in since.items] == [plain.id, other.id]
    before = client.list_runs(created_before=second.created_at, purpose="agent")
    assert [run.id for run in before.items] == [first.id]
    with pytest.raises(StrataAPIError) as refused:
        client.list_runs(created_after=other.created_at.replace(tzinfo=None))
    assert (refused.value.status_code, refused.value.code) == (422, "request_invalid")


async def test_the_async_client_lists_runs_by_workflow_run(live_server: LiveServer) -> None:
    async with live_server.async_client() as client:
        mine = await client.create_run(scoped("W9", "a"))
        await client.create_run(scoped("W8", "a"))
        page = await client.list_runs(workflow_run_id="W9")
        assert [run.id for run in page.items] == [mine.id]
        listed = [run.id async for run in client.iter_runs(workflow_run_id="W9", node_id="a")]
        assert listed == [mine.id]
