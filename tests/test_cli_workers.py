"""`strata workers`: the live worker processes, each with the runs it executes now."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models.base import utcnow
from app.notifier import LocalNotifier
from app.runs.repository import register_worker
from tests.db_fixtures import run_coroutine_blocking
from tests.runs.bodies import chat
from tests.server_fixtures import LiveServer

REPO = Path(__file__).resolve().parent.parent


def workers(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_DATABASE_URL"] = server.database_url
    return subprocess.run(
        [sys.executable, "-m", "app", "workers", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_strata_workers_lists_the_live_worker_and_its_runs(live_server: LiveServer) -> None:
    client = live_server.client()
    runs = [client.create_run(chat(f"slow {i}", llm={"latency_seconds": 20})) for i in range(2)]
    deadline = time.monotonic() + 15
    while any(client.get_run(run.id).status.value != "running" for run in runs):
        assert time.monotonic() < deadline, "the runs were not claimed"
        time.sleep(0.1)

    listed = workers(live_server)

    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert f":{os.getpid()}:" in line  # the live server's worker runs in this process
    assert "live" in line
    assert "runs=2/" in line
    for run in runs:
        client.cancel_run(run.id)


def test_a_worker_with_a_stale_heartbeat_is_listed_only_with_all(live_server: LiveServer) -> None:
    # older than the lease (5 s in tests), newer than the sweepers' cleanup (10 leases)
    old = utcnow() - timedelta(seconds=20)

    async def add_stale(session: AsyncSession) -> None:
        await register_worker(
            session,
            {
                "id": "gone-host:4242:dead",
                "host": "gone-host",
                "pid": 4242,
                "version": "0.0.1",
                "concurrency": 8,
                "in_flight": 3,
                "started_at": old,
                "heartbeat_at": old,
            },
        )

    async def insert() -> None:
        db = Database(live_server.database_url, LocalNotifier())
        try:
            await db.write(add_stale)
        finally:
            await db.close()

    run_coroutine_blocking(insert)

    live = workers(live_server)
    everything = workers(live_server, "--all")

    assert len(live.stdout.splitlines()) == 1  # the live server's own worker
    assert not any("gone-host" in line for line in live.stdout.splitlines())
    stale = [line for line in everything.stdout.splitlines() if "gone-host" in line]
    assert len(stale) == 1
    assert "stale" in stale[0] and "runs=0/8" in stale[0]
