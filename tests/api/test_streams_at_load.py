"""Event streams and long-polls at load (issue 13.5, 13.6 and the revoked key's streams).

- A reader that does not read does not make the server read the run's whole log (the stream
  reads a page only once the previous frames were sent), and it is dropped after
  `STRATA_SSE_STALL_SECONDS`; `/metrics` shows what was sent and why the stream ended.
- Many waiters and streams at once with a pool of two connections all get their answer (no
  503): they hold no connection while they wait.
- A long-poll whose run outlasts it answers within a second of its deadline under that load.
- A stream opened with a key that is then revoked (elsewhere: the database, not this process)
  ends within the key cache time with `: api key revoked`; the seed protocol's stream too.

Real uvicorn servers (`live_server_factory`); both databases.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx2
from sqlalchemy import insert, select, update

from app.db import create_engine, create_session_factory, unit_of_work
from app.keys import revoke_key
from app.models import ApiKeyRole
from app.models.run import Run, RunEvent
from tests.api_fixtures import create_key
from tests.runs.bodies import chat
from tests.server_fixtures import LiveServer, LiveServerFactory

METRICS_TOKEN = "operator-token-for-streams"
LOG_EVENTS = 400
EVENT_BYTES = 8192
LIVENESS_SECONDS = 60.0


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _metrics(server: LiveServer) -> dict[str, float]:
    body = httpx2.get(
        f"{server.base_url}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=30,
    ).text
    found: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith(("strata_event_stream", "strata_memory_trims")):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def _finished_run_with_a_large_log(server: LiveServer) -> str:
    """A finished run whose log holds LOG_EVENTS events of EVENT_BYTES before its terminal
    event (written into the database: a model that large would make the test slow)."""
    headers = server.headers()
    run = httpx2.post(f"{server.base_url}/v1/runs", json=chat(), headers=headers, timeout=30)
    run_id = run.json()["id"]
    done = httpx2.get(
        f"{server.base_url}/v1/runs/{run_id}/wait",
        params={"timeout_seconds": 30},
        headers=headers,
        timeout=40,
    ).json()
    assert done["status"] == "succeeded"

    filler = "x" * EVENT_BYTES

    async def grow() -> None:
        engine = create_engine(server.database_url)
        runs, events = Run.__table__, RunEvent.__table__
        try:
            async with engine.begin() as connection:
                row = (
                    await connection.execute(
                        select(runs.c.tenant_id, runs.c.last_event_seq).where(
                            runs.c.id == uuid.UUID(run_id)
                        )
                    )
                ).one()
                last = int(row.last_event_seq)
                shift = LOG_EVENTS
                await connection.execute(
                    update(events)
                    .where(events.c.run_id == uuid.UUID(run_id), events.c.seq == last)
                    .values(seq=last + shift)
                )
                now = datetime.now(UTC)
                await connection.execute(
                    insert(events),
                    [
                        {
                            "run_id": uuid.UUID(run_id),
                            "seq": last + index,
                            "tenant_id": row.tenant_id,
                            "type": "text_delta",
                            "data": {"text": filler, "part_index": 0},
                            "created_at": now,
                        }
                        for index in range(shift)
                    ],
                )
                await connection.execute(
                    update(runs)
                    .where(runs.c.id == uuid.UUID(run_id))
                    .values(last_event_seq=last + shift)
                )
        finally:
            await engine.dispose()

    _run(grow())
    return str(run_id)


def _poll(condition: Any, *, what: str, timeout: float = LIVENESS_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def test_a_reader_that_does_not_read_holds_a_bounded_part_of_the_log_and_is_dropped(
    live_server_factory: LiveServerFactory,
) -> None:
    # Small socket buffers on both sides, so what the kernel absorbs is small next to the log.
    server = live_server_factory(
        sse_stall_seconds=1.0, metrics_token=METRICS_TOKEN, send_buffer_bytes=16384
    )
    run_id = _finished_run_with_a_large_log(server)
    # A reader that reads the whole stream gets every event: the log is served as it is.
    with httpx2.stream(
        "GET",
        f"{server.base_url}/v1/runs/{run_id}/events/stream",
        headers=server.headers(),
        timeout=60,
    ) as full:
        ids = [line for line in full.iter_lines() if line.startswith("id: ")]
    assert len(ids) > LOG_EVENTS and ids[-1] == f"id: {len(ids)}"  # all, the terminal last
    before = _metrics(server)
    frames_key = "strata_event_stream_frames_total"
    stalled_key = 'strata_event_streams_closed_total{reason="stalled"}'

    idle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.base_url.removeprefix("http://").split(":")
    idle.connect((host, int(port)))
    request = (
        f"GET /v1/runs/{run_id}/events/stream HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {server.key}\r\n\r\n"
    )
    idle.sendall(request.encode())
    try:
        # The server gives up on the reader once a send has waited for the stall time...
        _poll(
            lambda: _metrics(server).get(stalled_key, 0) > before.get(stalled_key, 0),
            what="the non-reading stream was dropped as stalled",
        )
        after = _metrics(server)
        sent = after[frames_key] - before.get(frames_key, 0)
        # ...having sent only what the socket took: a small part of the log, not all of it.
        assert 0 < sent < LOG_EVENTS / 4
        assert after["strata_event_streams_open"] == 0
        # ...and what the streams held goes back to the system a second later (glibc).
        _poll(
            lambda: _metrics(server).get("strata_memory_trims_total", 0) > 0,
            what="the process trimmed its heap after the streams ended",
        )
        # The connection is gone: the reader gets what was buffered for it, then the end.
        idle.settimeout(LIVENESS_SECONDS)
        received = 0
        try:
            while chunk := idle.recv(65536):
                received += len(chunk)
        except ConnectionResetError:
            pass  # aborted with unread data: a reset is the expected end
        assert received < LOG_EVENTS * EVENT_BYTES / 4
    finally:
        idle.close()


async def _stream_to_end(client: httpx2.AsyncClient, path: str) -> tuple[int, list[str]]:
    async with client.stream("GET", path) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, []
        return 200, [line async for line in response.aiter_lines() if line.startswith("event: ")]


def test_many_waiters_and_streams_with_a_pool_of_two_all_get_their_answer(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(db_pool_size=2, metrics_token=METRICS_TOKEN)
    count = 100

    async def scenario() -> dict[str, Any]:
        limits = httpx2.Limits(max_connections=3 * count, max_keepalive_connections=3 * count)
        async with httpx2.AsyncClient(
            base_url=server.base_url, headers=server.headers(), timeout=120, limits=limits
        ) as client:
            body = chat(llm={"latency_seconds": 3.0, "reply": "done"})
            created = await asyncio.gather(
                *(client.post("/v1/runs", json=body) for _ in range(count))
            )
            assert {response.status_code for response in created} == {202}
            run_ids = [response.json()["id"] for response in created]
            outlasting = (
                await client.post(
                    "/v1/runs", json=chat(llm={"latency_seconds": 30.0, "reply": "late"})
                )
            ).json()["id"]

            async def short_wait() -> tuple[int, str, float]:
                sent = time.monotonic()
                response = await client.get(
                    f"/v1/runs/{outlasting}/wait", params={"timeout_seconds": 2}
                )
                return response.status_code, response.json()["status"], time.monotonic() - sent

            streams = [_stream_to_end(client, f"/v1/runs/{run}/events/stream") for run in run_ids]
            waits = [
                client.get(f"/v1/runs/{run}/wait", params={"timeout_seconds": 60})
                for run in run_ids
            ]
            results = await asyncio.gather(short_wait(), *streams, *waits)
            return {
                "short": results[0],
                "streams": results[1 : 1 + count],
                "waits": results[1 + count :],
            }

    outcome = _run(scenario())
    assert [status for status, _ in outcome["streams"]] == [200] * count
    assert all(lines[-1] == "event: run_succeeded" for _, lines in outcome["streams"])
    assert [response.status_code for response in outcome["waits"]] == [200] * count
    assert {response.json()["status"] for response in outcome["waits"]} == {"succeeded"}
    # The long-poll on the run that outlasts it answers at its deadline with the state then.
    # The service answers within about a second of the deadline (bench/streams.py measures
    # it); this bound is a liveness bound with room for a test machine running several suites.
    status, run_status, took = outcome["short"]
    assert status == 200 and run_status in {"queued", "running"}
    assert took < 2 + 8


def test_a_revoked_keys_streams_end_within_the_key_cache_time(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(key_cache_seconds=1.0, sse_keepalive_seconds=30.0)
    reader = create_key(server.database_url, "t1", ApiKeyRole.READER)
    run = httpx2.post(
        f"{server.base_url}/v1/runs",
        json=chat(llm={"latency_seconds": 60.0, "reply": "never seen"}),
        headers=server.headers(),
        timeout=30,
    ).json()
    paths = [
        f"/v1/runs/{run['id']}/events/stream",
        f"/compat/agent-backend/runs/{run['id']}/events/sse",
    ]

    async def follow(client: httpx2.AsyncClient, path: str, opened: asyncio.Event) -> list[str]:
        lines: list[str] = []
        async with client.stream("GET", path) as response:
            assert response.status_code == 200
            opened.set()
            async for line in response.aiter_lines():
                lines.append(line)
        return lines

    async def scenario() -> tuple[list[list[str]], float]:
        async with httpx2.AsyncClient(
            base_url=server.base_url, headers=server.headers(reader.key), timeout=120
        ) as client:
            opened = [asyncio.Event() for _ in paths]
            streams = [
                asyncio.create_task(follow(client, path, event))
                for path, event in zip(paths, opened, strict=True)
            ]
            for event in opened:
                await event.wait()
            # Revoked in the database, as another process (or `strata keys revoke`) does:
            # this server learns it only when its cached lookup expires.
            engine = create_engine(server.database_url)
            try:
                async with unit_of_work(create_session_factory(engine)) as session:
                    assert await revoke_key(session, reader.key_id)
            finally:
                await engine.dispose()
            revoked = time.monotonic()
            async with asyncio.timeout(LIVENESS_SECONDS):
                ended = await asyncio.gather(*streams)
            return ended, time.monotonic() - revoked

    ended, took = _run(scenario())
    for lines in ended:
        assert lines[-2:] == [": api key revoked", ""]
        assert not any(line.startswith("event: run_succeeded") for line in lines)
    # The run still runs (60 s): the streams ended because of the key, within the cache time
    # (1 s; generous bound for a loaded machine).
    assert took < 10
    again = httpx2.get(f"{server.base_url}{paths[0]}", headers=server.headers(reader.key))
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_api_key"
