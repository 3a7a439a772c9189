"""Event streams and long-polls at load (issue 13.5 and 13.6), on one `strata serve` process.

Starts `python -m app serve` (API + in-process worker; server pinned to CPU 0 when `taskset`
exists, this client to CPU 1) on a PostgreSQL database (or a fresh SQLite file), then:

**A. Waiters and streams.** Posts `--runs` runs whose `llm.test` model waits `--latency`
seconds, then opens, all at once, one SSE stream per run (`/v1/runs/{id}/events/stream`) and
one long-poll per run (`/wait`): half of them with `--short-wait` seconds (they end at their
deadline, before the run) and half with 60 s (they end with the run). Meanwhile `/healthz` is
probed every 20 ms and the server's RSS sampled every 0.25 s. Counted: any answer that is not
200, any transport error, a stream that ended without the run's terminal event, a 60 s wait
that came back before the run ended; and for the short waits, how late after their deadline
they came back.

**B. Readers that do not read.** Makes one finished run with a synthetic event log of about
`--log-mib` MiB (a quick run, then `--log-events` events of equal size written into the run's
log in the database, before its terminal event), then opens `--idle-readers` SSE streams of
that run whose clients never read a byte (their receive buffers held small), keeps them for
`--hold` seconds (the server drops them after `STRATA_SSE_STALL_SECONDS`, set to `--stall`),
closes them, and reports the server's RSS before, at the peak and `--settle` seconds after,
and the stream counters of `/metrics` (frames sent, streams stalled).

The clients are raw asyncio sockets (an HTTP client library per connection would cost the
client more CPU than the server spends). Only 127.0.0.1; stops only the process it started.

    .venv/bin/python bench/streams.py \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/strata_bench_streams --fresh
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_throughput as common
from inflight import percentile, rss_kib

from app.db import create_engine
from app.models.run import Run, RunEvent

METRICS_TOKEN = "bench-" + secrets.token_hex(8)
TERMINAL = (b"event: run_succeeded", b"event: run_failed", b"event: run_cancelled")


def run_body(latency: float, index: int) -> dict[str, Any]:
    llm: dict[str, Any] = {"name": "llm", "type": "llm.test", "config": {"reply": "done"}}
    if latency:
        llm["config"]["latency_seconds"] = latency
    return {
        "composition": {
            "layers": [
                {"name": "prompt", "type": "plain.prompt", "config": {"user": f"job {index}"}},
                {"name": "history", "type": "pydantic_ai.history"},
                llm,
            ]
        }
    }


# --- a small HTTP/1.1 client on raw sockets ------------------------------------------------------


def _request(host: str, path: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nAccept: */*\r\n\r\n"
    ).encode()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def get_json(host: str, port: int, path: str, key: str) -> tuple[int, Any, float]:
    """(status, body, when the request was handed to the kernel: `time.monotonic()`)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(_request(host, path, key))
        await writer.drain()
        sent = time.monotonic()
        status, headers = await _read_head(reader)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, json.loads(body) if body else None, sent
    finally:
        writer.close()


async def read_stream(host: str, port: int, path: str, key: str) -> tuple[int, bool]:
    """Read an event stream to its end: (status, whether the terminal event came)."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        writer.write(_request(host, path, key))
        status, _ = await _read_head(reader)
        seen = b""
        terminal = False
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            window = seen + chunk
            terminal = terminal or any(marker in window for marker in TERMINAL)
            seen = chunk[-64:]
            if chunk.endswith(b"0\r\n\r\n"):
                break  # the last chunk of the chunked body
        return status, terminal
    finally:
        writer.close()


# --- A: waiters and streams ----------------------------------------------------------------------


async def phase_waiters(
    args: argparse.Namespace, server: common.Server, key: str
) -> dict[str, Any]:
    pid = server.process.pid
    host, port = "127.0.0.1", int(server.base_url.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx2.Limits(max_connections=40, max_keepalive_connections=40)
    async with httpx2.AsyncClient(
        base_url=server.base_url, headers=headers, timeout=60, limits=limits
    ) as client:
        await common.wait_until_up(client, server, time.monotonic() + 60)
        for index in range(20):  # imports, pools, statement cache
            created = (await client.post("/v1/runs", json=run_body(0, index))).json()
            await client.get(f"/v1/runs/{created['id']}/wait", params={"timeout_seconds": 30})
        await asyncio.sleep(1)
        rss_before = rss_kib(pid)

        run_ids: list[str] = []
        post_errors: dict[str, int] = {}
        indexes = iter(range(args.runs))

        async def poster() -> None:
            for index in indexes:
                response = await client.post("/v1/runs", json=run_body(args.latency, index))
                if response.status_code == 202:
                    run_ids.append(response.json()["id"])
                else:
                    label = f"POST {response.status_code}"
                    post_errors[label] = post_errors.get(label, 0) + 1

        posted = time.monotonic()
        await asyncio.gather(*(poster() for _ in range(32)))
        post_seconds = time.monotonic() - posted

    health: list[float] = []
    rss_samples: list[int] = []
    stop = asyncio.Event()

    async def probe_health() -> None:
        async with httpx2.AsyncClient(base_url=server.base_url, timeout=10) as probe:
            while not stop.is_set():
                sent = time.perf_counter()
                with contextlib.suppress(httpx2.TransportError):
                    await probe.get("/healthz")
                    health.append(time.perf_counter() - sent)
                await asyncio.sleep(0.02)

    async def sample_rss() -> None:
        while not stop.is_set():
            rss_samples.append(rss_kib(pid))
            await asyncio.sleep(0.25)

    errors: dict[str, int] = {}
    lateness: list[float] = []

    def error(label: str) -> None:
        errors[label] = errors.get(label, 0) + 1

    async def stream(run_id: str) -> None:
        try:
            status, terminal = await read_stream(
                host, port, f"/v1/runs/{run_id}/events/stream", key
            )
        except OSError as exc:
            error(f"stream transport {type(exc).__name__}")
            return
        if status != 200:
            error(f"stream {status}")
        elif not terminal:
            error("stream ended without the terminal event")

    async def wait(run_id: str, timeout: float) -> None:
        # Lateness counts from when the request was written, not from when this client began
        # to connect: with 2,000 connections opened at once, this one-core client itself takes
        # ~1-2 s to connect them all and write their requests (measured: the lateness counted
        # from the connect attempt was 1-2 s for every wait, the same for all of them).
        try:
            status, body, sent = await get_json(
                host, port, f"/v1/runs/{run_id}/wait?timeout_seconds={timeout}", key
            )
        except (OSError, asyncio.IncompleteReadError) as exc:
            error(f"wait transport {type(exc).__name__}")
            return
        took = time.monotonic() - sent
        if status != 200:
            error(f"wait {status} {(body or {}).get('error', {}).get('code')}")
        elif timeout < args.latency:
            lateness.append(took - timeout)
        elif body["status"] not in ("succeeded", "failed", "cancelled", "paused"):
            error(f"60 s wait came back {body['status']}")

    probes = [asyncio.create_task(probe_health()), asyncio.create_task(sample_rss())]
    started = time.monotonic()
    tasks = []
    for position, run_id in enumerate(run_ids):
        tasks.append(stream(run_id))
        tasks.append(wait(run_id, args.short_wait if position % 2 == 0 else 60.0))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*probes)
    return {
        "runs": len(run_ids),
        "post_errors": post_errors,
        "post_seconds": round(post_seconds, 1),
        "streams": len(run_ids),
        "waits": len(run_ids),
        "errors": errors,
        "elapsed_seconds": round(elapsed, 1),
        "short_wait_seconds": args.short_wait,
        "short_wait_late_seconds": {
            "count": len(lateness),
            "p50": round(percentile(lateness, 0.5), 3),
            "p99": round(percentile(lateness, 0.99), 3),
            "max": round(max(lateness, default=float("nan")), 3),
        },
        "healthz_ms": {
            "count": len(health),
            "p50": round(percentile(health, 0.5) * 1000, 2),
            "p99": round(percentile(health, 0.99) * 1000, 2),
            "max": round(max(health, default=float("nan")) * 1000, 2),
        },
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_peak_mib": round(max(rss_samples, default=rss_before) / 1024, 1),
    }


# --- B: readers that do not read -----------------------------------------------------------------


async def make_big_log(args: argparse.Namespace, server: common.Server, key: str) -> str:
    """A finished run whose log holds `--log-events` synthetic events before its terminal one."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as client:
        run = (await client.post("/v1/runs", json=run_body(0, 0))).json()
        await client.get(f"/v1/runs/{run['id']}/wait", params={"timeout_seconds": 30})
    run_id = uuid.UUID(run["id"])
    filler = "x" * int(args.log_mib * 1024 * 1024 / args.log_events)
    engine = create_engine(args.database_url)
    runs, events = Run.__table__, RunEvent.__table__
    try:
        async with engine.begin() as connection:
            row = (
                await connection.execute(
                    select(runs.c.tenant_id, runs.c.last_event_seq).where(runs.c.id == run_id)
                )
            ).one()
            last = int(row.last_event_seq)
            shift = args.log_events
            await connection.execute(
                update(events)
                .where(events.c.run_id == run_id, events.c.seq == last)
                .values(seq=last + shift)
            )
            now = datetime.now(UTC)
            await connection.execute(
                insert(events),
                [
                    {
                        "run_id": run_id,
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
                update(runs).where(runs.c.id == run_id).values(last_event_seq=last + shift)
            )
    finally:
        await engine.dispose()
    return str(run_id)


async def metrics(server: common.Server) -> dict[str, float]:
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=30) as client:
        body = (
            await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        ).text
    found: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("strata_event_stream"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def phase_idle_readers(
    args: argparse.Namespace, server: common.Server, key: str
) -> dict[str, Any]:
    pid = server.process.pid
    port = int(server.base_url.rsplit(":", 1)[1])
    run_id = await make_big_log(args, server, key)
    await asyncio.sleep(2)
    before_metrics = await metrics(server)
    rss_before = rss_kib(pid)
    request = _request("127.0.0.1", f"/v1/runs/{run_id}/events/stream", key)
    sockets: list[socket.socket] = []
    for _ in range(args.idle_readers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that reads nothing
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        sockets.append(sock)
    samples: list[int] = []
    held = time.monotonic() + args.hold
    while time.monotonic() < held:
        samples.append(rss_kib(pid))
        await asyncio.sleep(0.25)
    during = await metrics(server)
    for sock in sockets:
        sock.close()
    await asyncio.sleep(args.settle)
    rss_after = rss_kib(pid)
    after_metrics = await metrics(server)

    def delta(source: dict[str, float], name: str) -> float:
        return source.get(name, 0.0) - before_metrics.get(name, 0.0)

    frames = "strata_event_stream_frames_total"
    stalled = 'strata_event_streams_closed_total{reason="stalled"}'
    return {
        "idle_readers": args.idle_readers,
        "log_events": args.log_events,
        "log_mib": args.log_mib,
        "stall_seconds": args.stall,
        "hold_seconds": args.hold,
        "frames_sent_per_reader": round(delta(during, frames) / args.idle_readers, 1),
        "streams_dropped_as_stalled": delta(after_metrics, stalled),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_peak_mib": round(max(samples, default=rss_before) / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "settle_seconds": args.settle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=30.0)
    parser.add_argument("--short-wait", type=float, default=15.0)
    parser.add_argument("--idle-readers", type=int, default=200)
    parser.add_argument("--log-mib", type=float, default=4.0)
    parser.add_argument("--log-events", type=int, default=1000)
    parser.add_argument("--stall", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--skip-waiters", action="store_true")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--fresh", action="store_true", help="PostgreSQL: drop and recreate")
    args = parser.parse_args()
    if not 1 <= args.runs <= 5000 or not 1 <= args.idle_readers <= 1000:
        raise SystemExit("--runs must be 1..5000 and --idle-readers 1..1000")
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="strata-streams-") as tmp:
        workdir = Path(tmp)
        if args.database_url is None:
            args.database_url = f"sqlite+aiosqlite:///{workdir / 'strata.db'}"
        else:
            common.prepare_postgres(args.database_url, fresh=args.fresh)
        env = {
            "STRATA_LOG_LEVEL": "warning",
            "STRATA_SSE_STALL_SECONDS": str(args.stall),
            "STRATA_METRICS_TOKEN": METRICS_TOKEN,
            "STRATA_WAIT_MAX_SECONDS": "60",
        }
        with common.start_server(args.database_url, workdir, env) as server:
            if shutil.which("taskset"):
                os.sched_setaffinity(server.process.pid, {0})
            deadline = time.monotonic() + 60
            while not common.KEY_PATTERN.search(server.stdout()) and time.monotonic() < deadline:
                time.sleep(0.1)
            key, _ = common.obtain_key(server, args.database_url, workdir)
            result: dict[str, Any] = {
                "benchmark": "streams",
                "database": "postgresql" if "postgresql" in args.database_url else "sqlite",
            }
            if not args.skip_waiters:
                result["waiters_and_streams"] = asyncio.run(phase_waiters(args, server, key))
            result["idle_readers"] = asyncio.run(phase_idle_readers(args, server, key))
    if "waiters_and_streams" in result:
        a = result["waiters_and_streams"]
        print(
            f"A. {a['streams']} SSE streams + {a['waits']} long-polls on {a['runs']} runs "
            f"({args.latency} s model latency), {result['database']}"
        )
        print(
            f"  errors               {a['errors'] or 'none'} (POST: {a['post_errors'] or 'none'})"
        )
        late = a["short_wait_late_seconds"]
        print(
            f"  {args.short_wait} s waits late by  p50 {late['p50']} s, p99 {late['p99']} s, "
            f"max {late['max']} s ({late['count']} waits)"
        )
        h = a["healthz_ms"]
        print(f"  /healthz             p50 {h['p50']} ms, p99 {h['p99']} ms, max {h['max']} ms")
        print(f"  RSS                  {a['rss_before_mib']} MiB → peak {a['rss_peak_mib']} MiB")
    b = result["idle_readers"]
    print(
        f"B. {b['idle_readers']} SSE readers that do not read, a {b['log_mib']} MiB log "
        f"({b['log_events']} events), stall limit {b['stall_seconds']} s"
    )
    print(f"  frames sent/reader   {b['frames_sent_per_reader']} (of {b['log_events'] + 3})")
    print(f"  dropped as stalled   {b['streams_dropped_as_stalled']}")
    print(
        f"  RSS                  {b['rss_before_mib']} MiB → peak {b['rss_peak_mib']} MiB → "
        f"{b['rss_after_mib']} MiB {b['settle_seconds']} s after they left"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
