"""Claiming queued runs, driven directly: a claim takes at most what the worker asks for (its
free capacity), oldest first, on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models.base import utcnow
from app.notifier import LocalNotifier
from app.runs import repository
from tests.api_fixtures import ApiFactory
from tests.db_fixtures import run_coroutine_blocking
from tests.runs.bodies import chat


async def _claim(session: AsyncSession, limit: int) -> list[str]:
    claimed = await repository.claim_queued(
        session, owner="claimer:1:test", limit=limit, now=utcnow()
    )
    return [str(run.id) for run in claimed]


def test_a_claim_takes_at_most_its_limit_oldest_first(api_factory: ApiFactory) -> None:
    # A worker asks for as many runs as it has free slots: taking more would run more at once
    # than STRATA_WORKER_CONCURRENCY and leave other workers idle next to a backlog.
    api = api_factory(run_worker=False)
    ids = [api.post_run(chat()).json()["id"] for _ in range(5)]

    async def _go() -> list[list[str]]:
        db = Database(api.database_url, LocalNotifier())
        await db.start()
        try:
            return [await db.write(_claim, limit) for limit in (1, 2, 5)]
        finally:
            await db.close()

    claims = run_coroutine_blocking(_go)

    assert claims == [ids[:1], ids[1:3], ids[3:]]
    statuses: dict[str, Any] = {
        run_id: api.client.get(f"/v1/runs/{run_id}", headers=api.headers()).json()["status"]
        for run_id in ids
    }
    assert set(statuses.values()) == {"running"}
