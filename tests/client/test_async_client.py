"""`AsyncStrataClient` against a real server: the same contracts as the blocking client."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import aclosing

import httpx2
import pytest

from app.client import (
    AsyncStrataClient,
    StrataAPIError,
    StrataStreamError,
    StrataTimeoutError,
)
from app.models import RunStatus
from app.runs.schemas import CreateRunRequest, RunEventRead
from tests.client.support import BASIC, STREAMING, run_body, seqs, slow
from tests.client.transports import AsyncBreakingTransport, Cut
from tests.server_fixtures import LiveServer, LiveServerFactory


async def wait_for_status(client: AsyncStrataClient, run_id: uuid.UUID, status: RunStatus) -> None:
    deadline = time.monotonic() + 10
    while (await client.get_run(run_id)).status is not status:
        assert time.monotonic() < deadline, f"run never became {status}"
        await asyncio.sleep(0.02)


async def test_create_get_wait_and_events_round_trip(live_server: LiveServer) -> None:
    async with live_server.async_client() as client:
        created = await client.create_run(CreateRunRequest.model_validate(BASIC))
        assert created.status is RunStatus.QUEUED
        assert (await client.get_run(created.id)).id == created.id

        finished = await client.wait_run(created.id, timeout_seconds=20)
        assert finished.status is RunStatus.SUCCEEDED
        assert finished.output == "echo #1: hello"

        page = await client.list_events(created.id, limit=500)
        assert page.terminal
        assert seqs(page.items) == list(range(1, len(page.items) + 1))
        assert [event async for event in client.iter_events(created.id)] == page.items

        later = await client.list_events(created.id, after=2, limit=1)
        assert later.items == page.items[2:3]
        assert later.next_cursor == 3


async def test_list_and_iterate_runs_with_cursors(live_server: LiveServer) -> None:
    async with live_server.async_client() as client:
        ids = [(await client.create_run(BASIC)).id for _ in range(3)]
        for run_id in ids:
            await client.wait_run(run_id, timeout_seconds=20)

        first = await client.list_runs(limit=2)
        assert [run.id for run in first.items] == ids[::-1][:2]
        assert first.next_cursor is not None
        second = await client.list_runs(cursor=first.next_cursor, limit=2)
        assert [run.id for run in second.items] == ids[::-1][2:]
        assert second.next_cursor is None

        assert [run.id async for run in client.iter_runs(page_size=1)] == ids[::-1]
        assert [run.id async for run in client.iter_runs(status="failed")] == []


async def test_cancel_and_wait(live_server: LiveServer) -> None:
    async with live_server.async_client() as client:
        run = await client.create_run(slow(30), idempotency_key="cancel-me")
        assert (await client.create_run(slow(30), idempotency_key="cancel-me")).id == run.id
        await wait_for_status(client, run.id, RunStatus.RUNNING)

        with pytest.raises(StrataTimeoutError) as caught:
            await client.wait_run(run.id, timeout_seconds=0.3)
        assert caught.value.run is not None
        assert caught.value.run.status is RunStatus.RUNNING

        cancelling = await client.cancel_run(run.id, reason="enough")
        assert cancelling.status in (RunStatus.CANCELLING, RunStatus.CANCELLED)
        finished = await client.wait_run(run.id, timeout_seconds=20)
        assert finished.status is RunStatus.CANCELLED
        events = [event async for event in client.iter_events(run.id)]
        assert events[-1].type == "run_cancelled"


async def test_wait_run_outlasts_the_servers_cap_on_one_wait(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(wait_max_seconds=0.2)
    async with server.async_client() as client:
        run = await client.create_run(slow(1.0))
        assert (await client.wait_run(run.id, timeout_seconds=20)).status is RunStatus.SUCCEEDED


async def test_errors_carry_the_servers_code(live_server: LiveServer) -> None:
    body = run_body()
    body["composition"]["layers"][2]["type"] = "llm.nope"
    async with live_server.async_client() as client:
        with pytest.raises(StrataAPIError) as caught:
            await client.create_run(body)
        assert (caught.value.status_code, caught.value.code) == (422, "unknown_layer_type")

        with pytest.raises(StrataAPIError) as caught:
            await client.get_run(uuid.uuid4())
        assert (caught.value.status_code, caught.value.code) == (404, "run_not_found")

        with pytest.raises(StrataAPIError) as caught:
            await anext(client.iter_events(uuid.uuid4()))
        assert caught.value.status_code == 404

    async with live_server.async_client(key="sk-wrong") as client:
        with pytest.raises(StrataAPIError) as caught:
            await client.list_runs()
        assert (caught.value.status_code, caught.value.code) == (401, "invalid_api_key")


async def test_a_live_stream_is_ordered_and_ends_with_one_terminal_event(
    live_server: LiveServer,
) -> None:
    async with live_server.async_client() as client:
        run = await client.create_run(STREAMING)
        events: list[RunEventRead] = [event async for event in client.iter_events(run.id)]
        assert seqs(events) == list(range(1, len(events) + 1))
        assert events[-1].type == "run_succeeded"
        assert [event.type for event in events].count("run_succeeded") == 1
        assert events == (await client.list_events(run.id, limit=500)).items


async def test_leaving_a_stream_early_and_resuming_loses_and_repeats_nothing(
    live_server: LiveServer,
) -> None:
    async with live_server.async_client() as client:
        run = await client.create_run(STREAMING)
        first: list[RunEventRead] = []
        async with aclosing(client.iter_events(run.id)) as stream:
            async for event in stream:
                first.append(event)
                if len(first) == 2:
                    break
        rest = [event async for event in client.iter_events(run.id, after=first[-1].seq)]
        assert first + rest == (await client.list_events(run.id, limit=500)).items


@pytest.mark.parametrize("cut", ["eof", "error"])
async def test_the_client_reconnects_by_itself_after_a_broken_stream(
    live_server: LiveServer, cut: Cut
) -> None:
    transport = AsyncBreakingTransport(cut_streams=2, frames_before_cut=1, cut=cut)
    async with live_server.async_client(transport=transport) as client:
        run = await client.create_run(STREAMING)
        events = [e async for e in client.iter_events(run.id, reconnect_delay_seconds=0.05)]
        assert events == (await client.list_events(run.id, limit=500)).items
    assert transport.plan.last_event_ids == [None, "1", "2"]


async def test_the_client_gives_up_after_max_reconnects(live_server: LiveServer) -> None:
    transport = AsyncBreakingTransport(fail_streams=-1)
    async with live_server.async_client(transport=transport) as client:
        run = await client.create_run(BASIC)
        with pytest.raises(StrataStreamError) as caught:
            async for _ in client.iter_events(
                run.id, max_reconnects=1, reconnect_delay_seconds=0.01
            ):
                pass
    assert len(transport.plan.stream_requests) == 2
    assert isinstance(caught.value.__cause__, StrataAPIError)


async def test_a_caller_owned_http_client_stays_open(live_server: LiveServer) -> None:
    async with httpx2.AsyncClient() as http:
        async with AsyncStrataClient(live_server.base_url, live_server.key, http_client=http) as c:
            await c.list_runs()
        assert not http.is_closed
