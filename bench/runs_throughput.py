"""Run throughput and latency of a real `strata serve` process (API + in-process worker).

Starts `python -m app serve --port <free port>` as a subprocess on 127.0.0.1 with
`STRATA_DATABASE_URL` set (a fresh SQLite file by default, or `--database-url` for PostgreSQL),
gets an API key (the bootstrap key the first start of an empty database prints on stdout, else
`python -m app keys create --tenant bench`), then drives it over HTTP with `httpx2`:

- `--concurrency` closed-loop clients; each posts a run (`llm.test`, prompt + history), then
  long-polls `GET /v1/runs/{id}/wait` until the run is terminal, then posts the next one;
- a warm-up of `--warmup` runs first (not measured), then `--runs` measured runs.

Reported (JSON on the last line, a table above it):

- throughput: measured runs / wall time of the measured phase;
- latency, client side: POST sent → terminal response received (p50/p95/p99);
- latency, server side: the run's `created_at` → `finished_at`, and its parts
  (`created_at` → `started_at` queueing, `started_at` → `finished_at` execution);
- wait wake-up: the run's `finished_at` → the waiting client got the response, for the waits that
  were sent before the run finished (the others found it terminal and are counted apart);
- service CPU per run: the server process's user+system CPU time (`/proc/<pid>/stat`) over the
  measured phase / measured runs; the bench client's own CPU is shown for context (both share
  the machine).

Bounded: at most `MAX_RUNS` runs and `--max-seconds` of wall time; only 127.0.0.1. Only the
process this script starts is stopped (SIGTERM, then SIGKILL after a grace period).

    .venv/bin/python bench/runs_throughput.py --runs 500 --concurrency 16
    .venv/bin/python bench/runs_throughput.py \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/strata_bench
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy.engine import URL, make_url

HOST = "127.0.0.1"
MAX_RUNS = 20_000
MAX_CONCURRENCY = 256
KEY_PATTERN = re.compile(r"\bsk-strata-[A-Za-z0-9_\-]+")
TERMINAL = {"succeeded", "paused", "failed", "cancelled"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def run_body(latency_seconds: float) -> dict[str, Any]:
    llm: dict[str, Any] = {"name": "llm", "type": "llm.test"}
    if latency_seconds:
        llm["config"] = {"latency_seconds": latency_seconds}
    return {
        "composition": {
            "layers": [
                {
                    "name": "prompt",
                    "type": "plain.prompt",
                    "config": {"prefix": "Be brief.", "user": "hello"},
                },
                {"name": "history", "type": "pydantic_ai.history"},
                llm,
            ]
        }
    }


# --- the server process ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from `/proc/<pid>/stat` (fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _psql_args(url: URL) -> tuple[list[str], dict[str, str]]:
    args = ["psql", "-h", url.host or HOST, "-p", str(url.port or 5432), "-d", "postgres"]
    if url.username:
        args += ["-U", url.username]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return [*args, "-v", "ON_ERROR_STOP=1", "-tAc"], env


def prepare_postgres(database_url: str, *, fresh: bool) -> None:
    """Create the database with psql when missing; with `fresh`, drop and recreate it."""
    url = make_url(database_url)
    name = url.database
    if not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"unsupported database name: {name!r}")
    if url.host not in (None, HOST, "localhost"):
        raise SystemExit("the benchmark only talks to 127.0.0.1")
    if fresh and not name.startswith("strata_bench"):
        raise SystemExit("--fresh only drops databases whose name starts with strata_bench")
    if shutil.which("psql") is None:
        raise SystemExit("psql is needed to create the PostgreSQL database")
    args, env = _psql_args(url)

    def psql(sql: str) -> str:
        done = subprocess.run([*args, sql], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    if fresh:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
        psql(f'CREATE DATABASE "{name}"')


@dataclasses.dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")


@contextlib.contextmanager
def start_server(
    database_url: str, workdir: Path, env_overrides: dict[str, str], profile: Path | None = None
) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "STRATA_DATABASE_URL": database_url,
        "STRATA_HOST": HOST,
        **env_overrides,
    }
    stdout_path, stderr_path = workdir / "server.stdout", workdir / "server.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                *(["-m", "cProfile", "-o", str(profile.resolve())] if profile else []),
                *["-m", "app", "serve", "--port", str(port)],
            ],
            cwd=workdir,  # no stray .env file from the caller's directory
            env=env,
            stdout=out,
            stderr=err,
        )
    server = Server(process, f"http://{HOST}:{port}", stdout_path, stderr_path)
    try:
        yield server
    finally:
        if process.poll() is None:
            # uvicorn re-raises the signal after its graceful shutdown; under cProfile, SIGINT
            # becomes a KeyboardInterrupt, which still lets cProfile write its stats.
            process.send_signal(signal.SIGINT if profile else signal.SIGTERM)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_until_up(client: httpx2.AsyncClient, server: Server, deadline: float) -> None:
    while True:
        if server.process.poll() is not None:
            raise SystemExit(
                f"the server exited with {server.process.returncode}:\n"
                + server.stderr_path.read_text(errors="replace")[-4000:]
            )
        with contextlib.suppress(httpx2.TransportError):
            if (await client.get("/healthz")).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit("the server did not come up in time")
        await asyncio.sleep(0.05)


def obtain_key(server: Server, database_url: str, workdir: Path) -> tuple[str, str]:
    """The bootstrap key printed by the first start of an empty database, else a new one."""
    match = KEY_PATTERN.search(server.stdout())
    if match:
        return match.group(0), "bootstrap (printed by serve)"
    done = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--tenant", "bench"],
        cwd=workdir,
        env={**os.environ, "STRATA_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    match = KEY_PATTERN.search(done.stdout)
    if done.returncode != 0 or not match:
        raise SystemExit(f"`keys create` failed: {done.stderr.strip()}")
    return match.group(0), "keys create --tenant bench"


# --- the load -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    status: str
    client_seconds: float  # POST sent → terminal response received
    post_seconds: float  # POST sent → 202 received
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    wait_sent_wall: float  # epoch seconds: the last /wait request was sent
    response_wall: float  # epoch seconds: the terminal response was received


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def one_run(client: httpx2.AsyncClient, body: dict[str, Any], wait_seconds: float) -> Sample:
    sent = time.perf_counter()
    created = await client.post("/v1/runs", json=body)
    if created.status_code != 202:
        raise RuntimeError(f"POST /v1/runs → {created.status_code}: {created.text[:500]}")
    post_seconds = time.perf_counter() - sent
    run = created.json()
    wait_sent_wall = time.time()
    while run["status"] not in TERMINAL:
        wait_sent_wall = time.time()
        response = await client.get(
            f"/v1/runs/{run['id']}/wait", params={"timeout_seconds": wait_seconds}
        )
        response.raise_for_status()
        run = response.json()
    response_wall = time.time()
    created_at = parse_time(run["created_at"])
    assert created_at is not None
    return Sample(
        status=run["status"],
        client_seconds=time.perf_counter() - sent,
        post_seconds=post_seconds,
        created_at=created_at,
        started_at=parse_time(run.get("started_at")),
        finished_at=parse_time(run.get("finished_at")),
        wait_sent_wall=wait_sent_wall,
        response_wall=response_wall,
    )


async def drive(
    client: httpx2.AsyncClient,
    count: int,
    concurrency: int,
    body: dict[str, Any],
    deadline: float,
) -> tuple[list[Sample], list[str]]:
    """`count` runs through `concurrency` closed-loop clients; stops issuing at `deadline`."""
    samples: list[Sample] = []
    errors: list[str] = []
    remaining = count

    async def client_loop() -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            try:
                samples.append(await one_run(client, body, wait_seconds=30))
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}")

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return samples, errors


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary_ms(values: Sequence[float]) -> dict[str, float | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "p50": ms(percentile(values, 50)),
        "p95": ms(percentile(values, 95)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values) if values else None),
    }


def analyse(samples: list[Sample]) -> dict[str, Any]:
    client = [s.client_seconds for s in samples]
    server = [(s.finished_at - s.created_at).total_seconds() for s in samples if s.finished_at]
    queued = [(s.started_at - s.created_at).total_seconds() for s in samples if s.started_at]
    executing = [
        (s.finished_at - s.started_at).total_seconds()
        for s in samples
        if s.started_at and s.finished_at
    ]
    woken = [
        s.response_wall - s.finished_at.timestamp()
        for s in samples
        if s.finished_at and s.wait_sent_wall < s.finished_at.timestamp()
    ]
    statuses: dict[str, int] = {}
    for sample in samples:
        statuses[sample.status] = statuses.get(sample.status, 0) + 1
    return {
        "statuses": statuses,
        "latency_client_ms": summary_ms(client),
        "post_ms": summary_ms([s.post_seconds for s in samples]),
        "latency_server_ms": summary_ms(server),
        "queued_ms": summary_ms(queued),
        "executing_ms": summary_ms(executing),
        "wait_wakeup_ms": summary_ms(woken),
        "waits_woken": len(woken),
        "waits_already_terminal": len(samples) - len(woken),
    }


def table(result: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:,.1f}"

    lines = [
        f"Strata runs throughput — {result['database']}, {result['runs']} runs, "
        f"concurrency {result['concurrency']}, worker concurrency {result['worker_concurrency']}",
        f"  throughput            {result['runs_per_second']:.1f} runs/s "
        f"({result['measured_seconds']:.2f} s measured, statuses {result['statuses']})",
        f"  service CPU per run   {result['service_cpu_ms_per_run']:.2f} ms "
        f"(bench client: {result['client_cpu_ms_per_run']:.2f} ms)",
        "",
        f"  {'latency (ms)':<34}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]
    rows = [
        ("client: POST sent → terminal", "latency_client_ms"),
        ("  POST /v1/runs → 202", "post_ms"),
        ("server: created_at → finished_at", "latency_server_ms"),
        ("  queued: created_at → started_at", "queued_ms"),
        ("  running: started → finished", "executing_ms"),
        ("wait wake-up: finished_at → client", "wait_wakeup_ms"),
    ]
    for label, key in rows:
        stats = result[key]
        lines.append(
            f"  {label:<34}" + "".join(f"{fmt(stats[q]):>9}" for q in ("p50", "p95", "p99", "max"))
        )
    lines.append(
        f"  (wake-up over {result['waits_woken']} waits that were sent before the run finished; "
        f"{result['waits_already_terminal']} found the run already terminal)"
    )
    if result["errors"]:
        lines.append(f"  errors: {len(result['errors'])}, first: {result['errors'][0]}")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace, server: Server, database_url: str) -> dict[str, Any]:
    workdir = server.stdout_path.parent
    deadline = time.monotonic() + args.max_seconds
    timeout = httpx2.Timeout(60.0, connect=10.0)
    limits = httpx2.Limits(max_connections=args.concurrency + 4)
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=timeout, limits=limits) as raw:
        await wait_until_up(raw, server, time.monotonic() + 60)
    key, key_source = obtain_key(server, database_url, workdir)
    headers = {"Authorization": f"Bearer {key}"}
    body = run_body(args.model_latency)
    async with httpx2.AsyncClient(
        base_url=server.base_url, timeout=timeout, limits=limits, headers=headers
    ) as client:
        _, warmup_errors = await drive(client, args.warmup, args.concurrency, body, deadline)
        if warmup_errors:
            raise SystemExit(f"warm-up failed: {warmup_errors[0]}")
        pid = server.process.pid
        cpu_before, own_before = process_cpu_seconds(pid), own_cpu_seconds()
        started = time.perf_counter()
        samples, errors = await drive(client, args.runs, args.concurrency, body, deadline)
        measured = time.perf_counter() - started
        cpu_after, own_after = process_cpu_seconds(pid), own_cpu_seconds()
    done = max(len(samples), 1)
    backend = make_url(database_url).get_backend_name()
    return {
        "benchmark": "runs_throughput",
        "database": backend,
        "runs": len(samples),
        "requested_runs": args.runs,
        "warmup_runs": args.warmup,
        "concurrency": args.concurrency,
        "worker_concurrency": int(args.worker_concurrency),
        "model_latency_seconds": args.model_latency,
        "key_source": key_source,
        "measured_seconds": round(measured, 3),
        "runs_per_second": round(len(samples) / measured, 2) if measured else 0.0,
        "service_cpu_ms_per_run": round((cpu_after - cpu_before) * 1000 / done, 3),
        "client_cpu_ms_per_run": round((own_after - own_before) * 1000 / done, 3),
        **analyse(samples),
        "timed_out": len(samples) + len(errors) < args.runs,
        "errors": errors[:5],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="measured runs (default 500)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients (default 16)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured runs first")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL (postgresql+asyncpg://…@127.0.0.1/…); default: a temp SQLite file",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="PostgreSQL: drop and recreate the database first (names starting strata_bench)",
    )
    parser.add_argument(
        "--worker-concurrency",
        default=os.environ.get("STRATA_WORKER_CONCURRENCY", "8"),
        help="STRATA_WORKER_CONCURRENCY of the server (default 8)",
    )
    parser.add_argument(
        "--model-latency", type=float, default=0.0, help="llm.test latency_seconds per request"
    )
    parser.add_argument("--log-level", default="info", help="STRATA_LOG_LEVEL of the server")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the server under cProfile and write its stats here (slows the server down)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="stop issuing runs after this long"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= MAX_RUNS or not 0 <= args.warmup <= MAX_RUNS:
        parser.error(f"--runs and --warmup must be within 1..{MAX_RUNS}")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--concurrency must be within 1..{MAX_CONCURRENCY}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp:
        workdir = Path(tmp)
        if args.database_url:
            database_url = args.database_url
            if make_url(database_url).get_backend_name() != "postgresql":
                raise SystemExit("--database-url must be a PostgreSQL URL")
            prepare_postgres(database_url, fresh=args.fresh)
        else:
            database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        env = {
            "STRATA_WORKER_CONCURRENCY": str(args.worker_concurrency),
            "STRATA_LOG_LEVEL": args.log_level,
        }
        with start_server(database_url, workdir, env, args.profile) as server:
            result = asyncio.run(benchmark(args, server, database_url))
    print(table(result))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
