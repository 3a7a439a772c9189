"""Bytes stored per run in a long conversation: is a session's history written once per run?

Starts `strata serve` on a fresh SQLite file (or `--database-url`), runs a `--turns`-turn
conversation on one runtime-session scope (each run resumes the previous run's snapshot, so the
history grows by one exchange per turn), and sums the stored size of every column of every table
(`length(CAST(column AS TEXT))`) before and after. Reports bytes stored per run, and the size of
the last run's resulting snapshot for scale.

`--app-dir DIR` runs the server from another checkout of Strata (e.g. an older commit, in a git
worktree) with this checkout's environment, to measure before and after a change.

    .venv/bin/python bench/storage.py --turns 20
    git worktree add /tmp/strata-old <commit>
    .venv/bin/python bench/storage.py --app-dir /tmp/strata-old
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_throughput as common

from app.db import create_engine, read_only


def scope() -> dict[str, str]:
    return {
        "app_id": "app",
        "workflow_id": "wf",
        "workflow_run_id": "wr-storage",
        "node_id": "node",
        "binding_id": "binding",
        "agent_id": "agent",
        "agent_config_snapshot_id": "snap",
    }


def turn_body(turn: int) -> dict[str, Any]:
    return {
        "composition": {
            "layers": [
                {
                    "name": "prompt",
                    "type": "plain.prompt",
                    "config": {
                        "prefix": "You are a careful assistant. Answer in one paragraph.",
                        "user": f"Question {turn}: tell me something about the number {turn}.",
                    },
                },
                {"name": "history", "type": "pydantic_ai.history"},
                {
                    "name": "llm",
                    "type": "llm.test",
                    "config": {"reply": f"The number {turn} is a fine number. " * 6},
                },
            ]
        },
        "session": scope(),
    }


async def stored_bytes(url: str) -> dict[str, int]:
    engine = read_only(create_engine(url))
    try:
        async with engine.connect() as connection:

            def tables(sync: Any) -> dict[str, list[str]]:
                inspector = sa.inspect(sync)
                return {
                    name: [column["name"] for column in inspector.get_columns(name)]
                    for name in inspector.get_table_names()
                    if name != "alembic_version"
                }

            found = await connection.run_sync(tables)
            sizes = {}
            for table, columns in found.items():
                total = " + ".join(
                    f'coalesce(sum(length(CAST("{column}" AS TEXT))), 0)' for column in columns
                )
                sizes[table] = int(
                    await connection.scalar(sa.text(f'SELECT {total} FROM "{table}"')) or 0
                )
            return sizes
    finally:
        await engine.dispose()


async def converse(server: common.Server, key: str, turns: int) -> int:
    async with httpx2.AsyncClient(
        base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as client:
        await common.wait_until_up(client, server, time.monotonic() + 60)
        last: dict[str, Any] = {}
        for turn in range(1, turns + 1):
            created = await client.post("/v1/runs", json=turn_body(turn))
            assert created.status_code == 202, created.text
            done = await client.get(
                f"/v1/runs/{created.json()['id']}/wait", params={"timeout_seconds": 30}
            )
            last = done.json()
            assert last["status"] == "succeeded", last
        return len(json.dumps(last["session_snapshot"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--app-dir", default=None, help="serve from this Strata checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-storage-") as tmp:
        workdir = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'strata.db'}"
        if args.database_url:
            common.prepare_postgres(url, fresh=True)
        env = {"STRATA_LOG_LEVEL": "warning"}
        if args.app_dir:
            env["PYTHONPATH"] = str(Path(args.app_dir).resolve())
            os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # `keys create` uses the same code
        with common.start_server(url, workdir, env) as server:
            deadline = time.monotonic() + 60
            while not common.KEY_PATTERN.search(server.stdout()) and time.monotonic() < deadline:
                time.sleep(0.1)
            key, _ = common.obtain_key(server, url, workdir)
            before = asyncio.run(stored_bytes(url))
            snapshot = asyncio.run(converse(server, key, args.turns))
            after = asyncio.run(stored_bytes(url))
    grown = {table: after[table] - before.get(table, 0) for table in after}
    total = sum(grown.values())
    result = {
        "benchmark": "storage",
        "app_dir": args.app_dir or ".",
        "turns": args.turns,
        "bytes_per_run": round(total / args.turns),
        "bytes_by_table_per_run": {t: round(v / args.turns) for t, v in grown.items() if v},
        "last_snapshot_bytes": snapshot,
    }
    print(
        f"{args.turns}-turn conversation: {result['bytes_per_run']} bytes stored per run "
        f"(last snapshot {snapshot} bytes)"
    )
    for table, value in result["bytes_by_table_per_run"].items():
        print(f"  {value:8d}  {table}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
