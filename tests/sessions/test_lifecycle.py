"""The session lifecycle has no path that strands a session, loses a pause, or runs delete hooks
it does not own (one test per way it used to; both databases).

A session is `active` (resumable, maybe with a snapshot) until a cleanup run released its
suspended layers, or it holds none: only then is it `cleaned`. See docs/ARCHITECTURE.md,
"Session lifecycle".
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import update

from app.db import create_engine
from app.models import Run, WorkflowAgentRuntimeSession
from tests.agents.support import create_agent, save_version, soul
from tests.agents.test_node_runs import bind
from tests.agents.test_node_runs import node_run as post_node_run
from tests.api_fixtures import Api, ApiFactory
from tests.db_fixtures import run_coroutine_blocking
from tests.layer_types import RECORDS
from tests.runs.bodies import layer
from tests.sessions.test_sessions import node_run, retire, scope, sessions


def _execute(database_url: str, statement: Any) -> None:
    """One statement in its own transaction, from outside the app (another database client)."""

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(statement)
        finally:
            await engine.dispose()

    run_coroutine_blocking(run)


def _fresh(label: str) -> str:
    RECORDS.pop(label, None)
    return label


def _until(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def _deferring(user: str, *tools: str, **extra: Any) -> dict[str, Any]:
    """A session run whose model calls `tools` (ask_human, an external tool, an approval)."""
    body = node_run(user, llm={"call_tools": list(tools), "reply": "done"}, **extra)
    body["composition"]["layers"][2:2] = [
        layer("ask_human", "ask_human"),
        layer(
            "external",
            "tools.external",
            {"tools": [{"name": "charge_card", "parameters": {"type": "object"}}]},
        ),
        layer("approval", "test.approval", {}),
    ]
    return body


# 1. A layer deleted at the end of a run starts fresh in the next run; retire skips it.


def test_a_layer_deleted_on_exit_starts_fresh_next_run_and_retire_cleans(api: Api) -> None:
    label = _fresh("deleted-on-exit")
    delete_rec = {"default": "suspend", "layers": {"rec": "delete"}}

    first = api.run_to_end(node_run("one", label=label, on_exit=delete_rec))
    second = api.run_to_end(node_run("two", label=label))

    assert first["status"] == "succeeded", first
    assert second["status"] == "succeeded", second
    assert second["output"] == "echo #2: two"  # the history layer resumed
    assert RECORDS[label] == [
        *("open", "create", "delete", "close"),
        *("open", "create", "suspend", "close"),  # a fresh layer, not a resumed closed one
    ]
    assert retire(api, second["session_id"])["result"] == "cleaned"
    assert RECORDS[label][-3:] == ["resume", "delete", "close"]
    [row] = sessions(api)
    assert row["status"] == "cleaned"


def test_a_session_whose_layers_were_all_deleted_retires_without_a_cleanup_run(api: Api) -> None:
    label = _fresh("all-deleted")
    done = api.run_to_end(node_run("one", label=label, on_exit={"default": "delete"}))

    report = retire(api, done["session_id"])

    assert report["result"] == "cleaned"
    assert report["cleanup_run_id"] is None
    assert RECORDS[label] == ["open", "create", "delete", "close"]


# 2. A resume that does not answer the pending call is refused; the pause survives.


def test_a_bad_resume_is_refused_and_the_pause_survives(api: Api) -> None:
    paused = api.run_to_end(_deferring("book it", "ask_human"))
    assert paused["status"] == "paused", paused
    [call] = paused["deferred_tool_calls"]

    wrong_id = api.post_run(
        _deferring("x", deferred_tool_results={"calls": {"not-the-call": "yes"}})
    )
    no_answer = api.post_run(_deferring("what now?"))

    assert wrong_id.status_code == 422
    assert _error(wrong_id)["code"] == "deferred_results_mismatch"
    assert _error(wrong_id)["details"]["pending_tool_call_ids"] == [call["tool_call_id"]]
    assert _error(wrong_id)["details"]["unknown"] == ["not-the-call"]
    assert no_answer.status_code == 422
    assert _error(no_answer)["code"] == "deferred_results_required"
    [row] = sessions(api)
    assert (row["status"], row["backend_run_id"]) == ("active", paused["id"])

    answer = {"calls": {call["tool_call_id"]: "yes, book it"}}
    done = api.run_to_end(_deferring("book it", deferred_tool_results=answer))
    assert done["status"] == "succeeded", done
    assert done["output"] == "done"


# 3. Every pending call is listed and must be answered; approvals alone pause too.


def test_several_deferred_calls_pause_once_and_all_must_be_answered(api: Api) -> None:
    paused = api.run_to_end(_deferring("go", "ask_human", "charge_card", "delete_file"))

    assert paused["status"] == "paused", paused
    calls = paused["deferred_tool_calls"]
    assert [(c["tool_name"], c["kind"]) for c in calls] == [
        ("ask_human", "call"),
        ("charge_card", "call"),
        ("delete_file", "approval"),
    ]
    assert calls[1]["metadata"] == {"layer_type": "tools.external"}
    assert paused["deferred_tool_call"] == calls[0]  # the first, for older clients
    ids = {c["tool_name"]: c["tool_call_id"] for c in calls}

    partial = api.post_run(
        _deferring("go", deferred_tool_results={"calls": {ids["ask_human"]: "ok"}})
    )
    assert partial.status_code == 422
    assert _error(partial)["code"] == "deferred_results_mismatch"
    assert _error(partial)["details"]["missing"] == sorted([ids["charge_card"], ids["delete_file"]])

    answers = {
        "calls": {ids["ask_human"]: "ok", ids["charge_card"]: {"charged": 12.5}},
        "approvals": {ids["delete_file"]: {"approved": False, "message": "not that file"}},
    }
    done = api.run_to_end(_deferring("go", deferred_tool_results=answers))

    assert done["status"] == "succeeded", done
    results = {
        event["data"]["tool_name"]: event["data"]
        for event in api.events(done["id"])
        if event["type"] == "tool_result"
    }
    assert results["charge_card"]["outcome"] == "success"
    assert "12.5" in results["charge_card"]["content"]
    assert results["delete_file"]["outcome"] == "denied"
    assert "not that file" in results["delete_file"]["content"]


def test_a_turn_of_approvals_only_pauses_and_an_approval_runs_the_tool(api: Api) -> None:
    paused = api.run_to_end(_deferring("clean up", "delete_file"))

    assert paused["status"] == "paused", paused
    [call] = paused["deferred_tool_calls"]
    assert (call["tool_name"], call["kind"], call["args"]) == (
        "delete_file",
        "approval",
        {"path": "test"},
    )

    answers = {"approvals": {call["tool_call_id"]: True}}
    done = api.run_to_end(_deferring("clean up", deferred_tool_results=answers))

    assert done["status"] == "succeeded", done
    [result] = [e["data"] for e in api.events(done["id"]) if e["type"] == "tool_result"]
    assert (result["outcome"], result["content"]) == ("success", "deleted test")


# 4. An attempt that lost its lease runs no delete hook and writes nothing.


def test_an_attempt_that_lost_its_lease_runs_no_delete_hook(api_factory: ApiFactory) -> None:
    api = api_factory(lease_seconds=1.0, heartbeat_seconds=0.2, sweep_seconds=0.2)
    label = _fresh("stale-attempt")
    created = api.post_run(
        node_run("slow", label=label, llm={"latency_seconds": 1.5}, limits={"timeout_seconds": 1})
    )
    assert created.status_code == 202, created.text
    run_id = uuid.UUID(created.json()["id"])
    _until(lambda: "create" in RECORDS[label])

    # another attempt takes the run over (as a sweeper and a second worker would)
    _execute(
        api.database_url,
        update(Run).where(Run.id == run_id).values(lease_owner="other-worker", attempt=2),
    )
    _until(lambda: "close" in RECORDS[label])

    assert RECORDS[label] == ["open", "create", "close"]  # no delete, no suspend
    ended = api.wait(str(run_id))
    assert ended["status"] == "failed"
    assert ended["error_type"] == "worker_lost"  # settled once, by the sweeper
    terminal = [
        e
        for e in api.events(str(run_id))
        if e["type"].startswith("run_")
        and e["type"] in ("run_succeeded", "run_failed", "run_cancelled", "run_paused")
    ]
    assert [e["type"] for e in terminal] == ["run_failed"]


# 5. Shutdown hands the run back: the session keeps its previous snapshot.


def test_shutdown_hands_a_session_run_back_and_keeps_the_previous_snapshot(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(shutdown_grace_seconds=0.2)
    label = _fresh("shutdown")
    first = api.run_to_end(node_run("remember this", label=label))
    created = api.post_run(node_run("slow", label=label, llm={"latency_seconds": 5}))
    assert created.status_code == 202, created.text
    _until(lambda: RECORDS[label].count("resume") == 1)

    api.stop()

    assert RECORDS[label][-2:] == ["suspend", "close"]  # not deleted
    later = api_factory(run_worker=False)
    ended = later.wait(created.json()["id"])
    assert (ended["status"], ended["error_type"]) == ("failed", "worker_shutdown")
    [row] = sessions(later)
    assert row["status"] == "active"
    assert row["current_run_id"] is None
    assert row["session_snapshot"] == first["session_snapshot"]


# 6. A session is cleaned only by a cleanup run (or when nothing holds resources).


def test_cancelling_a_queued_session_run_keeps_the_session_for_retire(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(worker_concurrency=1)
    label = _fresh("queued-cancel")
    first = api.run_to_end(node_run("hello", label=label))
    blocker = api.post_run(
        node_run("busy", session=scope(node_id="other"), llm={"latency_seconds": 3})
    )
    blocker_path = f"/v1/runs/{blocker.json()['id']}"
    _until(
        lambda: api.client.get(blocker_path, headers=api.headers()).json()["status"] == "running"
    )
    queued = api.post_run(node_run("never runs", label=label))
    cancel = api.client.post(f"/v1/runs/{queued.json()['id']}/cancel", headers=api.headers())
    assert cancel.status_code == 200, cancel.text  # a queued run is cancelled at once

    cancelled = api.wait(queued.json()["id"])

    assert cancelled["status"] == "cancelled"
    row = next(r for r in sessions(api) if r["node_id"] == "node-a")
    assert row["status"] == "active"
    assert row["session_snapshot"] == first["session_snapshot"]
    assert retire(api, first["session_id"])["result"] == "cleaned"
    assert RECORDS[label][-3:] == ["resume", "delete", "close"]


# 7. A cleaned session never resumes an inline snapshot.


def test_a_cleaned_session_refuses_an_inline_snapshot_and_starts_fresh_without(api: Api) -> None:
    first = api.run_to_end(node_run("one"))
    assert retire(api, first["session_id"])["result"] == "cleaned"

    inline = api.post_run(node_run("two", session_snapshot=first["session_snapshot"]))
    fresh = api.run_to_end(node_run("two"))

    assert inline.status_code == 422
    assert _error(inline)["code"] == "session_retired"
    assert fresh["output"] == "echo #1: two"


# 8. Retire is bounded, reports every session (paged), and refuses to start while shutting down.


def test_retire_reports_every_session_page_by_page(api: Api) -> None:
    ids = {
        api.run_to_end(node_run("x", session=scope(node_id=f"node-{i}")))["session_id"]
        for i in range(5)
    }
    reported: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        body: dict[str, Any] = {"workflow_run_id": "wr-1", "limit": 2, "wait_seconds": 5}
        if cursor:
            body["cursor"] = cursor
        response = api.client.post("/v1/sessions/retire", json=body, headers=api.headers())
        assert response.status_code == 200, response.text
        pages += 1
        reported += response.json()["reports"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert {r["session_id"] for r in reported} == ids
    assert {r["result"] for r in reported} == {"cleaned"}
    assert {r["node_id"] for r in reported} == {f"node-{i}" for i in range(5)}
    assert {row["status"] for row in sessions(api)} == {"cleaned"}


def test_a_shutting_down_process_refuses_retires_before_starting_any(api: Api) -> None:
    done = api.run_to_end(node_run("x"))
    api.client.app.state.strata.accepting = False

    many = api.client.post(
        "/v1/sessions/retire", json={"workflow_run_id": "wr-1"}, headers=api.headers()
    )
    one = api.client.post(f"/v1/sessions/{done['session_id']}/retire", headers=api.headers())

    assert (many.status_code, one.status_code) == (503, 503)
    assert _error(many)["code"] == "shutting_down"
    [row] = sessions(api)
    assert row["status"] == "active"


def test_retire_reports_stored_specs_that_no_longer_parse_as_cleanup_failed(api: Api) -> None:
    done = api.run_to_end(node_run("x"))
    _execute(
        api.database_url,
        update(WorkflowAgentRuntimeSession)
        .where(WorkflowAgentRuntimeSession.id == uuid.UUID(done["session_id"]))
        .values(composition_layer_specs=[{"name": "", "type": "gone"}]),
    )

    report = retire(api, done["session_id"])

    assert report["result"] == "cleanup_failed"
    assert report["reason"].startswith("invalid_stored_specs")
    [row] = sessions(api)
    assert row["status"] == "active"


# 9. A node run retried after its agent was edited replays the first run.


def test_an_idempotent_node_run_replays_after_its_agent_was_edited(api: Api) -> None:
    agent = create_agent(api)
    bind(api, agent["id"])
    first = post_node_run(api, idempotency_key="wr-1:ex-1:1")
    save_version(api, agent["id"], soul("You are someone else now."))

    retried = post_node_run(api, idempotency_key="wr-1:ex-1:1")

    assert (first.status_code, retried.status_code) == (202, 200), retried.text
    assert retried.json()["id"] == first.json()["id"]
