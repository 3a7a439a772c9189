"""Throughput with one worker process versus two, when the model's latency dominates.

Starts, on 127.0.0.1 and a PostgreSQL database (`--database-url`; created when missing), one
`strata serve --no-worker` process and N `strata worker` processes (`--worker-concurrency` runs
each), then posts `--runs` runs whose `llm.test` model sleeps `--latency` seconds per request and
waits for all of them. It does this with 1 and with 2 workers (`--workers 1 2`) on an emptied
database each time and reports runs/s, the speed-up, and how the runs spread over the workers.
With model latency dominating, throughput is bounded by workers * concurrency / latency, so two
workers should come close to twice one worker's rate.

Bounded: at most 2,000 runs and `--max-seconds` per point; only processes it started are
stopped.

    .venv/bin/python bench/workers_scaling.py --runs 200 --latency 0.5 --worker-concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
MAX_RUNS = 2_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body(latency: float, index: int) -> dict[str, Any]:
    return {
        "composition": {
            "layers": [
                {"name": "prompt", "type": "plain.prompt", "config": {"user": f"job {index}"}},
                {"name": "llm", "type": "llm.test", "config": {"latency_seconds": latency}},
            ]
        }
    }


async def reset_database(url: str) -> None:
    parsed = make_url(url).set(drivername="postgresql")
    admin = await asyncpg.connect(
        parsed.set(database="postgres").render_as_string(hide_password=False)
    )
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(parsed.render_as_string(hide_password=False))
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


async def measure(args: argparse.Namespace, workers: int, logs: Path) -> dict[str, Any]:
    await reset_database(args.database_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STRATA_")},
        "STRATA_DATABASE_URL": args.database_url,
        "STRATA_LOG_LEVEL": "warning",
        "STRATA_WORKER_CONCURRENCY": str(args.worker_concurrency),
    }
    subprocess.run([sys.executable, "-m", "app", "migrate"], env=env, check=True, cwd=REPO)
    key = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--tenant", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    env["STRATA_AUTO_MIGRATE"] = "false"
    env["STRATA_BOOTSTRAP_DEFAULT_TENANT"] = "false"
    port = free_port()
    processes = [spawn(["serve", "--no-worker", "--port", str(port)], env, logs / "api.log")]
    processes += [spawn(["worker"], env, logs / f"worker-{i}.log") for i in range(workers)]
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            for _ in range(200):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx2.TransportError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # let the workers subscribe
            started = time.monotonic()
            created = await asyncio.gather(
                *(client.post("/v1/runs", json=body(args.latency, i)) for i in range(args.runs))
            )
            ids = [response.json()["id"] for response in created]

            async def wait(run_id: str) -> dict[str, Any]:
                while True:
                    run: dict[str, Any] = (
                        await client.get(f"/v1/runs/{run_id}/wait", params={"timeout_seconds": 30})
                    ).json()
                    if run["status"] in ("succeeded", "failed", "cancelled", "paused"):
                        return run
                    if time.monotonic() - started > args.max_seconds:
                        raise TimeoutError("the point took longer than --max-seconds")

            runs = await asyncio.gather(*(wait(run_id) for run_id in ids))
            elapsed = time.monotonic() - started
            spread: Counter[str] = Counter()
            for run_id in ids:
                events = (await client.get(f"/v1/runs/{run_id}/events")).json()["items"]
                worker = next(e["data"]["worker"] for e in events if e["type"] == "run_started")
                spread[worker.split(":")[1]] += 1
    finally:
        stop(processes)
    return {
        "workers": workers,
        "runs": args.runs,
        "succeeded": sum(1 for run in runs if run["status"] == "succeeded"),
        "seconds": round(elapsed, 2),
        "runs_per_second": round(args.runs / elapsed, 2),
        "runs_per_worker": sorted(spread.values(), reverse=True),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/strata_bench"
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5, help="model seconds per request")
    parser.add_argument("--worker-concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    args.runs = min(args.runs, MAX_RUNS)
    points = []
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as logs:
        for workers in args.workers:
            points.append(await measure(args, workers, Path(logs)))
    base = points[0]["runs_per_second"]
    print(
        f"{'workers':>8} {'runs':>6} {'ok':>6} {'seconds':>8} {'runs/s':>8} {'speed-up':>9}  spread"
    )
    for point in points:
        speedup = point["runs_per_second"] / base if base else 0
        point["speedup"] = round(speedup, 2)
        print(
            f"{point['workers']:>8} {point['runs']:>6} {point['succeeded']:>6} "
            f"{point['seconds']:>8} {point['runs_per_second']:>8} {speedup:>8.2f}x  "
            f"{point['runs_per_worker']}"
        )
    print(
        json.dumps(
            {
                "benchmark": "workers_scaling",
                "latency": args.latency,
                "worker_concurrency": args.worker_concurrency,
                "points": points,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
