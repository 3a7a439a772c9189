"""Thousands of slow runs in flight in one `strata serve` process.

Starts `python -m app serve` (API + in-process worker, server pinned to CPU 0 when `taskset`
exists, this client to CPU 1) on a fresh SQLite file or a PostgreSQL database, then:

1. warms up (`--warmup` quick runs), and reads the server's resident memory (`VmRSS`);
2. posts `--runs` runs whose `llm.test` model waits `--latency` seconds, at `--post-rate` per
   second (an open-loop schedule over `--posters` concurrent clients; 0 = as fast as they can),
   recording the POST rate achieved;
3. meanwhile probes `GET /healthz` every 20 ms and samples the server's RSS every 0.25 s;
4. waits for every run to end and reads the outcome of each from the database.

Reported (a table, then one JSON line): POST rate (sustained, over the posting phase), the peak
number of runs in flight (`status = running`, counted in the database), RSS before and at the
peak and its growth per in-flight run, `/healthz` latency percentiles while runs were in flight,
statuses, `worker_lost` count, and the time the last run ended.

Bounded: at most 20,000 runs; only 127.0.0.1; stops only the process it started.

    .venv/bin/python bench/inflight.py --runs 5000 --latency 20
    .venv/bin/python bench/inflight.py --runs 5000 --latency 20 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/strata_bench_inflight
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_throughput as common

from app.db import create_engine, read_only

MAX_RUNS = 20_000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def body(latency: float, index: int) -> dict[str, Any]:
    llm: dict[str, Any] = {"name": "llm", "type": "llm.test"}
    if latency:
        llm["config"] = {"latency_seconds": latency, "reply": "done"}
    return {
        "composition": {
            "layers": [
                {
                    "name": "prompt",
                    "type": "plain.prompt",
                    "config": {"prefix": "Be brief.", "user": f"job {index}"},
                },
                {"name": "history", "type": "pydantic_ai.history"},
                llm,
            ]
        }
    }


async def count_by_status(database_url: str) -> dict[str, int]:
    engine = read_only(create_engine(database_url))  # never takes SQLite's write lock
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT status, count(*) FROM runs GROUP BY status"))
            ).all()
        return {str(status): int(count) for status, count in rows}
    finally:
        await engine.dispose()


async def count_worker_lost(database_url: str) -> int:
    engine = read_only(create_engine(database_url))
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT count(*) FROM runs WHERE error_type = 'worker_lost'")
            )
        return int(found or 0)
    finally:
        await engine.dispose()


async def measure(args: argparse.Namespace, server: common.Server, key: str) -> dict[str, Any]:
    pid = server.process.pid
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx2.Limits(max_connections=args.posters + 8, max_keepalive_connections=64)
    async with httpx2.AsyncClient(
        base_url=server.base_url, headers=headers, timeout=60, limits=limits
    ) as client:
        await common.wait_until_up(client, server, time.monotonic() + 60)
        for index in range(args.warmup):  # imports, pools, statement cache
            created = (await client.post("/v1/runs", json=body(0, index))).json()
            await client.get(f"/v1/runs/{created['id']}/wait", params={"timeout_seconds": 30})
        await asyncio.sleep(1)
        rss_before = rss_kib(pid)

        health: list[float] = []
        rss_samples: list[tuple[float, int]] = []
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
                rss_samples.append((time.monotonic(), rss_kib(pid)))
                await asyncio.sleep(0.25)

        probes = [asyncio.create_task(probe_health()), asyncio.create_task(sample_rss())]
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        errors: dict[str, int] = {}

        async def schedule() -> None:
            begin = time.monotonic()
            for index in range(args.runs):
                if args.post_rate:
                    delay = begin + index / args.post_rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                queue.put_nowait(index)
            for _ in range(args.posters):
                queue.put_nowait(None)

        async def poster() -> None:
            while True:
                index = await queue.get()
                if index is None:
                    return
                try:
                    response = await client.post("/v1/runs", json=body(args.latency, index))
                except httpx2.TransportError as error:  # counted, not fatal: the report says
                    key_ = f"transport {type(error).__name__}"
                    errors[key_] = errors.get(key_, 0) + 1
                    continue
                if response.status_code != 202:
                    key_ = f"{response.status_code} {response.text[:120]}"
                    errors[key_] = errors.get(key_, 0) + 1

        started = time.monotonic()
        await asyncio.gather(schedule(), *(poster() for _ in range(args.posters)))
        posted_seconds = time.monotonic() - started

        peak_running = 0
        deadline = time.monotonic() + args.latency * 3 + 120
        while True:
            counts = await count_by_status(args.database_url)
            peak_running = max(peak_running, counts.get("running", 0))
            if sum(counts.get(s, 0) for s in ("queued", "running", "cancelling")) == 0:
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        all_done = time.monotonic() - started
        stop.set()
        await asyncio.gather(*probes)

    in_flight_health = health  # every probe ran while runs were posted or in flight
    peak_rss = max(value for _, value in rss_samples) if rss_samples else rss_before
    counts = await count_by_status(args.database_url)
    return {
        "benchmark": "inflight",
        "database": "postgresql" if "postgresql" in args.database_url else "sqlite",
        "runs": args.runs,
        "model_latency_seconds": args.latency,
        "worker_concurrency": args.worker_concurrency,
        "posters": args.posters,
        "target_post_rate": args.post_rate,
        "post_rate_per_second": round(args.runs / posted_seconds, 1),
        "posting_seconds": round(posted_seconds, 2),
        "post_errors": errors,
        "peak_running": peak_running,
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_peak_mib": round(peak_rss / 1024, 1),
        "rss_growth_kib_per_run_in_flight": (
            round((peak_rss - rss_before) / peak_running, 1) if peak_running else None
        ),
        "healthz_ms": {
            "count": len(in_flight_health),
            "p50": round(percentile(in_flight_health, 0.5) * 1000, 2),
            "p99": round(percentile(in_flight_health, 0.99) * 1000, 2),
            "max": round(max(in_flight_health, default=float("nan")) * 1000, 2),
        },
        "statuses": counts,
        "worker_lost": await count_worker_lost(args.database_url),
        "all_done_seconds": round(all_done, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=20.0)
    parser.add_argument("--posters", type=int, default=32)
    parser.add_argument("--post-rate", type=float, default=300.0, help="0: as fast as possible")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--worker-concurrency", type=int, default=6000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--fresh", action="store_true", help="PostgreSQL: drop and recreate")
    args = parser.parse_args()
    if not 1 <= args.runs <= MAX_RUNS:
        raise SystemExit(f"--runs must be 1..{MAX_RUNS}")
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="strata-inflight-") as tmp:
        workdir = Path(tmp)
        if args.database_url is None:
            args.database_url = f"sqlite+aiosqlite:///{workdir / 'strata.db'}"
        else:
            common.prepare_postgres(args.database_url, fresh=args.fresh)
        env = {
            "STRATA_WORKER_CONCURRENCY": str(args.worker_concurrency),
            "STRATA_LOG_LEVEL": "warning",
            "STRATA_MAX_QUEUED_RUNS_PER_TENANT": str(MAX_RUNS),
        }
        with common.start_server(args.database_url, workdir, env) as server:
            if shutil.which("taskset"):
                os.sched_setaffinity(server.process.pid, {0})
            deadline = time.monotonic() + 60
            while not common.KEY_PATTERN.search(server.stdout()) and time.monotonic() < deadline:
                time.sleep(0.1)
            key, _ = common.obtain_key(server, args.database_url, workdir)
            result = asyncio.run(measure(args, server, key))
    print(
        f"in flight: {result['runs']} runs, model latency {result['model_latency_seconds']} s, "
        f"{result['database']}"
    )
    print(
        f"  POST /v1/runs        {result['post_rate_per_second']} /s "
        f"(target {result['target_post_rate'] or 'as fast as possible'}) "
        f"over {result['posting_seconds']} s, errors {result['post_errors'] or 'none'}"
    )
    print(f"  peak in flight       {result['peak_running']} runs")
    print(
        f"  RSS                  {result['rss_before_mib']} MiB → {result['rss_peak_mib']} MiB "
        f"({result['rss_growth_kib_per_run_in_flight']} KiB per run in flight)"
    )
    print(
        f"  /healthz             p50 {result['healthz_ms']['p50']} ms, "
        f"p99 {result['healthz_ms']['p99']} ms, max {result['healthz_ms']['max']} ms "
        f"({result['healthz_ms']['count']} probes)"
    )
    print(f"  statuses             {result['statuses']}, worker_lost {result['worker_lost']}")
    print(f"  all ended after      {result['all_done_seconds']} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
