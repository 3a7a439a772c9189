"""A run created in a process whose worker has a free slot is claimed in the transaction that
queues it (`Database.queue_follower`): one write transaction fewer per run, the same events.

Transactions are recorded on the serving app's engine, per connection, so the test sees which
statements committed together, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from app.runs import manager
from tests.api_fixtures import Api
from tests.runs.bodies import chat


@contextmanager
def transactions(api: Api) -> Iterator[list[list[str]]]:
    """The committed transactions while the block runs, each as its statements (lower case)."""
    engine = api.client.app.state.strata.db.engine.sync_engine  # type: ignore[attr-defined]
    open_: dict[int, list[str]] = {}
    committed: list[list[str]] = []

    def execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        open_.setdefault(id(conn), []).append(" ".join(statement.split()).lower())

    def commit(conn: Any) -> None:
        committed.append(open_.pop(id(conn), []))

    def rollback(conn: Any) -> None:
        open_.pop(id(conn), None)

    event.listen(engine, "before_cursor_execute", execute)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)
    try:
        yield committed
    finally:
        event.remove(engine, "before_cursor_execute", execute)
        event.remove(engine, "commit", commit)
        event.remove(engine, "rollback", rollback)


def test_a_run_queued_here_is_claimed_in_the_transaction_that_queues_it(api: Api) -> None:
    api.wait(api.post_run(chat("warm up")).json()["id"])  # the worker is registered

    with transactions(api) as committed:
        created = api.post_run(chat("hi"))
        assert created.status_code == 202, created.text
        run = api.wait(created.json()["id"])

    assert run["status"] == "succeeded"
    inserts = [t for t in committed if any(s.startswith("insert into runs ") for s in t)]
    assert len(inserts) == 1
    (queued,) = inserts
    assert any("update runs set status" in s for s in queued)  # claimed there
    claims = [t for t in committed if any("update runs set status" in s for s in t)]
    assert len(claims) == 2  # queued + claimed, then finished: no transaction of its own
    types = [e["type"] for e in api.events(run["id"])]
    assert types[:2] == ["run_queued", "run_started"]
    assert types[-1] == "run_succeeded"


def test_a_claim_that_fails_in_the_batch_leaves_the_run_to_the_claim_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any) -> list[Any]:
        raise RuntimeError("the claim failed")

    monkeypatch.setattr(manager, "_claim_in_batch", broken)

    created = api.post_run(chat("hi"))

    assert created.status_code == 202, created.text  # the run is queued all the same
    run = api.wait(created.json()["id"])
    assert run["status"] == "succeeded"  # claimed by the claim loop instead
    types = [e["type"] for e in api.events(run["id"])]
    assert types[:2] == ["run_queued", "run_started"]
    assert types.count("run_started") == 1
