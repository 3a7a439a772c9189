"""Statements per run: what one run costs the database, counted in the serving process.

Serves the app with uvicorn in this process (API + worker, the embedded default), with a
`before_cursor_execute` listener on its engine, posts `--runs` runs (`plain.prompt` +
`pydantic_ai.history` + `llm.test`) one after another, each followed by `GET /wait`, after a
warm-up, and prints the statements per run grouped by kind (`BEGIN`, `COMMIT`, `INSERT runs`…),
counting everything the process sent: requests, the worker's claim and finish, heartbeats and
sweeps of the measured period, reads. One client, so SQLite's writer commits each write alone
(no group commit): an upper bound.

    .venv/bin/python bench/statements.py --runs 200
    .venv/bin/python bench/statements.py --runs 200 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/strata_bench_statements
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_throughput as common

from app.config import Settings
from app.db import create_engine, create_session_factory, unit_of_work
from app.keys import issue_key
from app.main import create_app
from app.migrate import upgrade_to_head

_WORD = re.compile(r"^\s*(\w+)(?:.*?\b(?:FROM|INTO|UPDATE)\s+(\w+))?", re.I | re.S)


def kind(statement: str) -> str:
    match = _WORD.match(statement)
    if match is None:
        return statement[:20]
    verb = match.group(1).upper()
    if verb == "UPDATE":
        table = statement.split()[1]
        return f"UPDATE {table}"
    return f"{verb} {match.group(2)}" if match.group(2) else verb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-statements-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'strata.db'}"
        if args.database_url:
            common.prepare_postgres(url, fresh=False)
        upgrade_to_head(url)
        key = asyncio.run(_issue(url))
        counts: collections.Counter[str] = collections.Counter()
        measuring = threading.Event()
        settings = Settings(_env_file=None, database_url=url, log_level="warning")  # type: ignore[call-arg]
        app = create_app(settings)
        original = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def counting(app_: Any) -> Any:
            async with original(app_) as value:
                engine = app_.state.strata.db.engine.sync_engine

                @event.listens_for(engine, "before_cursor_execute")
                def _count(*call: Any) -> None:
                    # SQLAlchemy's BEGIN (SQLite: sent by the `begin` hook) is counted there; a
                    # SQLite writer's batch begins on the sqlite3 connection (no execution
                    # context: `app.direct_sql.begin`) and is counted here
                    begins = call[2].startswith("BEGIN")
                    if measuring.is_set() and (not begins or call[4] is None):
                        counts["BEGIN" if begins else kind(call[2])] += 1

                @event.listens_for(engine, "begin")
                def _begin(*_: Any) -> None:
                    if measuring.is_set():
                        counts["BEGIN"] += 1

                @event.listens_for(engine, "commit")
                def _commit(*_: Any) -> None:
                    if measuring.is_set():
                        counts["COMMIT"] += 1

                yield value

        app.router.lifespan_context = counting  # type: ignore[assignment]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            with httpx2.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the server did not start")
                    time.sleep(0.05)
                for _ in range(args.warmup):
                    _one(client)
                measuring.set()
                for _ in range(args.runs):
                    _one(client)
                measuring.clear()
        finally:
            server.should_exit = True
            thread.join(30)
    per_run = {name: round(count / args.runs, 2) for name, count in counts.most_common()}
    total = round(sum(counts.values()) / args.runs, 2)
    print(
        f"statements per run ({'postgresql' if 'postgresql' in url else 'sqlite'}, "
        f"{args.runs} runs, one client): {total}"
    )
    for name, value in per_run.items():
        print(f"  {value:6.2f}  {name}")
    print(
        json.dumps(
            {
                "benchmark": "statements",
                "runs": args.runs,
                "per_run": per_run,
                "total_per_run": total,
            }
        )
    )


def _one(client: httpx2.Client) -> None:
    body = {
        "composition": {
            "layers": [
                {"name": "prompt", "type": "plain.prompt", "config": {"user": "hi"}},
                {"name": "history", "type": "pydantic_ai.history"},
                {"name": "llm", "type": "llm.test", "config": {"reply": "hi"}},
            ]
        }
    }
    created = client.post("/v1/runs", json=body)
    assert created.status_code == 202, created.text
    done = client.get(f"/v1/runs/{created.json()['id']}/wait", params={"timeout_seconds": 30})
    assert done.json()["status"] == "succeeded", done.text


async def _issue(url: str) -> str:
    engine = create_engine(url)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            return (await issue_key(session, "bench")).key
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
