"""The SDK's workflow-engine surface against a real server, with both clients.

Every test runs twice, with `StrataClient` and with `AsyncStrataClient` (one scenario body, see
`tests.client.workflow_support.Either`), on the suite's database (SQLite or PostgreSQL): agents,
versions and revisions, bindings, node runs with pause and resume, sessions and retire, API keys,
their error paths (the server's code on a `StrataAPIError`) and iteration across pages.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from app.agents.schemas import AgentCreate, AgentUpdate, BindingsCopy, NodeRunRequest, VersionSave
from app.models import (
    AgentConfigOperation,
    AgentScope,
    AgentStatus,
    ApiKeyRole,
    RunStatus,
    RuntimeSessionStatus,
)
from app.sessions.schemas import RetireResult
from tests.api_fixtures import create_key
from tests.client.workflow_support import Either, api_error, node_run, roster_binding, soul
from tests.server_fixtures import LiveServer

OpenClient = Callable[..., Either]


@pytest.fixture(params=["sync", "async"])
async def open_client(
    request: pytest.FixtureRequest, live_server: LiveServer
) -> AsyncIterator[OpenClient]:
    """Opens a client of this test's flavour for the live server (its admin key by default)."""
    opened: list[Either] = []

    def open_one(key: str | None = None) -> Either:
        if request.param == "sync":
            client = Either(live_server.client(key))
        else:
            client = Either(live_server.async_client(key))
        opened.append(client)
        return client

    yield open_one
    for client in opened:
        if request.param == "async":
            await client.aclose()


async def test_agents_versions_and_revisions(open_client: OpenClient) -> None:
    client = open_client()
    first = await client.create_agent({"name": "writer", "scope": "roster", "config": soul("a")})
    typed = AgentCreate.model_validate({"name": "editor", "scope": "roster", "config": soul()})
    second = await client.create_agent(typed)
    third = await client.create_agent({"name": "critic", "scope": "roster", "config": soul()})
    assert (first.name, first.active_version, first.status) == ("writer", 1, AgentStatus.ACTIVE)
    assert (await client.get_agent(first.id)) == first
    assert (await client.get_agent(str(first.id))).id == first.id

    renamed = await client.update_agent(first.id, AgentUpdate(description="writes things"))
    assert (renamed.name, renamed.description) == ("writer", "writes things")
    renamed = await client.update_agent(first.id, {"name": "author"})
    assert (renamed.name, renamed.description) == ("author", "writes things")

    page = await client.list_agents(limit=2)
    assert [agent.id for agent in page.items] == [third.id, second.id]
    rest = await client.list_agents(limit=2, cursor=page.next_cursor)
    assert [agent.id for agent in rest.items] == [first.id]
    assert rest.next_cursor is None
    every = await client.iter_agents(page_size=1)
    assert [agent.id for agent in every] == [third.id, second.id, first.id]
    assert [a.id for a in await client.iter_agents(q="AUTH")] == [first.id]
    assert await client.iter_agents(scope=AgentScope.WORKFLOW_ONLY) == []

    saved = await client.save_version(
        first.id, VersionSave.model_validate({"config": soul("b"), "operation": "save_new_version"})
    )
    assert (saved.version.version, saved.agent.active_version) == (2, 2)
    assert saved.revision.operation is AgentConfigOperation.SAVE_NEW_VERSION
    again = await client.save_version(
        first.id,
        {"config": soul("c"), "operation": "save_current_version", "summary": "tweak"},
    )
    assert (again.version.version, again.version.summary) == (3, "tweak")

    versions = await client.list_versions(first.id, limit=2)
    assert [v.version for v in versions.items] == [3, 2]
    assert versions.next_cursor == 2
    older = await client.list_versions(first.id, before=versions.next_cursor)
    assert [v.version for v in older.items] == [1]
    assert [v.version for v in await client.iter_versions(first.id, page_size=1)] == [3, 2, 1]
    v1 = await client.get_version(first.id, 1)
    assert v1.config.model is not None and v1.config.model.settings == {"reply": "a"}
    assert not v1.is_active and (await client.get_version(first.id, 3)).is_active

    revisions = await client.iter_revisions(first.id, page_size=2)
    assert [r.revision for r in revisions] == [3, 2, 1]
    assert revisions[-1].operation is AgentConfigOperation.CREATE_VERSION
    assert revisions[0].previous_snapshot_id == saved.version.id
    assert (await client.list_revisions(first.id, limit=1)).next_cursor == 3

    copy = await client.save_agent_as(first.id, {"name": "author copy"})
    assert copy.agent.id != first.id
    assert copy.revision.operation is AgentConfigOperation.SAVE_NEW_AGENT
    assert copy.version.config == again.version.config
    local = await client.create_agent({"name": "local", "scope": "workflow_only", "config": soul()})
    promoted = await client.save_agent_to_roster(local.id, name="promoted")
    assert (promoted.agent.scope, promoted.agent.name) == (AgentScope.ROSTER, "promoted")

    archived = await client.archive_agent(second.id)
    assert archived.status is AgentStatus.ARCHIVED
    assert (await client.archive_agent(second.id)).status is AgentStatus.ARCHIVED
    assert second.id not in {a.id for a in await client.iter_agents()}
    gone = await client.iter_agents(status=["archived"])
    assert [a.id for a in gone] == [second.id]

    missing = await api_error(client.get_agent(uuid.uuid4()))
    assert (missing.status_code, missing.code) == (404, "agent_not_found")
    taken = await api_error(
        client.create_agent({"name": "critic", "scope": "roster", "config": soul()})
    )
    assert (taken.status_code, taken.code) == (409, "agent_name_taken")
    invalid = await api_error(
        client.create_agent({"name": "x", "scope": "roster", "config": {"bogus": 1}})
    )
    assert (invalid.status_code, invalid.code) == (422, "request_invalid")
    assert invalid.details["errors"]
    frozen = await api_error(client.update_agent(second.id, {"description": "no"}))
    assert (frozen.status_code, frozen.code) == (409, "agent_archived")
    no_version = await api_error(client.get_version(first.id, 9))
    assert (no_version.status_code, no_version.code) == (404, "version_not_found")
    in_roster = await api_error(client.save_agent_to_roster(first.id))
    assert (in_roster.status_code, in_roster.code) == (409, "already_in_roster")


async def test_bindings_put_get_list_copy_and_delete(open_client: OpenClient) -> None:
    client = open_client()
    agent = await client.create_agent({"name": "binder", "scope": "roster", "config": soul()})
    v1 = agent.active_config_snapshot_id
    v2 = await client.save_version(agent.id, {"config": soul("x"), "operation": "save_new_version"})

    follow = await client.put_binding("wf-1", "draft", "follow", roster_binding(agent.id))
    pinned = await client.put_binding("wf-1", "draft", "pinned", roster_binding(agent.id, v1))
    inline = await client.put_binding(
        "wf-1",
        "draft",
        "inline",
        {
            "binding_type": "inline_agent",
            "agent": {"name": "helper", "config": soul()},
            "app_id": "app-1",
            "node_job_config": {},
        },
    )
    assert (follow.snapshot_id, follow.resolved_version) == (None, 2)
    assert follow.resolved_snapshot_id == v2.version.id
    assert (pinned.snapshot_id, pinned.resolved_version) == (v1, 1)
    assert inline.agent_id != agent.id and inline.snapshot_id is not None
    replaced = await client.put_binding(
        "wf-1", "draft", "follow", roster_binding(agent.id, workflow_prompt="New job.")
    )
    assert replaced.id == follow.id
    assert replaced.node_job_config.workflow_prompt == "New job."
    assert await client.get_binding("wf-1", "draft", "follow") == replaced

    listed = await client.list_bindings("wf-1", "draft")
    assert [b.node_id for b in listed.items] == ["follow", "inline", "pinned"]
    copied = await client.copy_bindings("wf-1", "draft", BindingsCopy(target_version="v1"))
    assert [b.node_id for b in copied.items] == ["follow", "inline", "pinned"]
    assert {b.workflow_version for b in copied.items} == {"v1"}
    exists = await api_error(client.copy_bindings("wf-1", "draft", {"target_version": "v1"}))
    assert (exists.status_code, exists.code) == (409, "bindings_exist")
    recopied = await client.copy_bindings(
        "wf-1", "draft", {"target_version": "v1", "replace": True}
    )
    assert len(recopied.items) == 3
    same = await api_error(client.copy_bindings("wf-1", "draft", {"target_version": "draft"}))
    assert (same.status_code, same.code) == (422, "same_workflow_version")

    await client.delete_binding("wf-1", "draft", "pinned")
    gone = await api_error(client.get_binding("wf-1", "draft", "pinned"))
    assert (gone.status_code, gone.code) == (404, "binding_not_found")
    twice = await api_error(client.delete_binding("wf-1", "draft", "pinned"))
    assert (twice.status_code, twice.code) == (404, "binding_not_found")
    other = await client.create_agent({"name": "other", "scope": "roster", "config": soul()})
    wrong_pin = await api_error(
        client.put_binding(
            "wf-1", "draft", "x", roster_binding(agent.id, other.active_config_snapshot_id)
        )
    )
    assert (wrong_pin.status_code, wrong_pin.code) == (422, "snapshot_not_of_agent")
    unknown = await api_error(
        client.put_binding("wf-1", "draft", "x", roster_binding(uuid.uuid4()))
    )
    assert (unknown.status_code, unknown.code) == (404, "agent_not_found")


async def test_node_runs_pause_resume_and_replay(open_client: OpenClient) -> None:
    client = open_client()
    asker = {
        **soul(human={"contacts": [{"name": "ops"}]}),
        "model": {
            "provider": "test",
            "model": "test",
            "settings": {"call_tools": ["ask_human"], "reply": '{"text": "done"}'},
        },
    }
    agent = await client.create_agent({"name": "asker", "scope": "roster", "config": asker})
    await client.put_binding(
        "wf-1",
        "v1",
        "review",
        roster_binding(agent.id, declared_outputs=[{"name": "text", "type": "string"}]),
    )

    first = await client.create_node_run(
        "wr-1", "review", NodeRunRequest.model_validate(node_run(inputs={"query": "ship it?"}))
    )
    assert first.status is RunStatus.QUEUED
    assert first.metadata["node_id"] == "review"
    paused = await client.wait_run(first.id, timeout_seconds=30)
    assert paused.status is RunStatus.PAUSED, paused
    assert paused.deferred_tool_calls is not None
    [call] = paused.deferred_tool_calls
    assert call.tool_name == "ask_human"

    mismatch = await api_error(
        client.create_node_run(
            "wr-1", "review", node_run("ex-2", deferred_tool_results={"calls": {"nope": "yes"}})
        )
    )
    assert (mismatch.status_code, mismatch.code) == (422, "deferred_results_mismatch")
    assert mismatch.details["pending_tool_call_ids"] == [call.tool_call_id]
    required = await api_error(client.create_node_run("wr-1", "review", node_run("ex-2")))
    assert (required.status_code, required.code) == (422, "deferred_results_required")

    answer = node_run("ex-2", deferred_tool_results={"calls": {call.tool_call_id: "yes"}})
    resumed = await client.create_node_run("wr-1", "review", answer, idempotency_key="wr-1:ex-2")
    replay = await client.create_node_run("wr-1", "review", answer, idempotency_key="wr-1:ex-2")
    assert replay.id == resumed.id
    reused = await api_error(
        client.create_node_run("wr-1", "review", node_run("ex-3"), idempotency_key="wr-1:ex-2")
    )
    assert (reused.status_code, reused.code) == (409, "idempotency_key_reused")
    done = await client.wait_run(resumed.id, timeout_seconds=30)
    assert done.status is RunStatus.SUCCEEDED, done
    assert done.output == {"text": "done"}
    assert done.session_id == paused.session_id

    unbound = await api_error(client.create_node_run("wr-1", "nowhere", node_run()))
    assert (unbound.status_code, unbound.code) == (404, "binding_not_found")
    bad = await api_error(client.create_node_run("wr-1", "review", {"workflow_id": "wf-1"}))
    assert (bad.status_code, bad.code) == (422, "request_invalid")


async def test_sessions_list_get_busy_and_retire(open_client: OpenClient) -> None:
    client = open_client()
    agent = await client.create_agent({"name": "worker", "scope": "roster", "config": soul()})
    nodes = ["a", "b", "c"]
    for node in nodes:
        await client.put_binding("wf-1", "v1", node, roster_binding(agent.id))
    runs = [await client.create_node_run("wr-9", node, node_run()) for node in nodes]
    for run in runs:
        assert (await client.wait_run(run.id, timeout_seconds=30)).status is RunStatus.SUCCEEDED
    elsewhere = await client.create_node_run("wr-other", "a", node_run())
    await client.wait_run(elsewhere.id, timeout_seconds=30)

    page = await client.list_sessions(workflow_run_id="wr-9", limit=2)
    assert [s.node_id for s in page.items] == ["c", "b"]
    sessions = await client.iter_sessions(workflow_run_id="wr-9", page_size=1)
    assert [s.node_id for s in sessions] == ["c", "b", "a"]
    assert {s.id for s in sessions} == {run.session_id for run in runs}
    session = await client.get_session(runs[0].session_id)
    assert (session.node_id, session.status) == ("a", RuntimeSessionStatus.ACTIVE)
    assert session.backend_run_id == runs[0].id
    missing = await api_error(client.get_session(uuid.uuid4()))
    assert (missing.status_code, missing.code) == (404, "session_not_found")

    slow = await client.save_version(
        agent.id,
        {
            "operation": "save_new_version",
            "config": {
                **soul(),
                "model": {"provider": "test", "model": "t", "settings": {"latency_seconds": 5}},
            },
        },
    )
    assert slow.version.version == 2
    # wr-9 keeps the version its first node run fixed for a following binding (version 1):
    # pinning node a to the slow version is what makes its next turn slow
    await client.put_binding("wf-1", "v1", "a", roster_binding(agent.id, slow.version.id))
    busy_run = await client.create_node_run("wr-9", "a", node_run("ex-2"))
    busy = await api_error(client.create_node_run("wr-9", "a", node_run("ex-3")))
    assert (busy.status_code, busy.code) == (409, "session_busy")
    waited = await client.retire_session(runs[0].session_id, wait_seconds=0)
    [report] = waited.reports
    assert (report.result, report.current_run_id) == (RetireResult.STILL_RUNNING, busy_run.id)
    await client.cancel_run(busy_run.id)
    await client.wait_run(busy_run.id, timeout_seconds=30)

    [retired] = (await client.retire_session(runs[1].session_id, wait_seconds=10)).reports
    assert (retired.result, retired.node_id) == (RetireResult.CLEANED, "b")
    assert retired.cleanup_run_id is not None
    [again] = (await client.retire_session(runs[1].session_id)).reports
    assert again.result is RetireResult.ALREADY_CLEANED
    assert (await client.get_session(runs[1].session_id)).status is RuntimeSessionStatus.CLEANED

    first_page = await client.retire_workflow_run("wr-9", wait_seconds=10, limit=2)
    assert [r.node_id for r in first_page.reports] == ["c", "b"]
    assert first_page.next_cursor is not None
    assert first_page.reports[1].result is RetireResult.ALREADY_CLEANED
    reports = await client.iter_retire_workflow_run("wr-9", wait_seconds=10, page_size=1)
    assert [r.node_id for r in reports] == ["c", "b", "a"]
    assert {r.result for r in reports} <= {RetireResult.CLEANED, RetireResult.ALREADY_CLEANED}
    left = await client.iter_sessions(workflow_run_id="wr-9", status="active")
    assert left == []
    other = await client.iter_sessions(workflow_run_id="wr-other")
    assert [s.status for s in other] == [RuntimeSessionStatus.ACTIVE]
    gone = await api_error(client.retire_session(uuid.uuid4()))
    assert (gone.status_code, gone.code) == (404, "session_not_found")


async def test_api_keys_for_a_tenant_admin(
    open_client: OpenClient, live_server: LiveServer
) -> None:
    admin = open_client()
    created = await admin.create_key(ApiKeyRole.RUNNER, label="engine")
    assert (created.role, created.label) == (ApiKeyRole.RUNNER, "engine")
    assert created.key.startswith(created.prefix)
    reader = await admin.create_key("reader")
    listed = await admin.list_keys()
    assert [k.id for k in listed.items][:2] == [reader.id, created.id]
    assert all("key" not in k.model_dump() for k in listed.items)

    runner = open_client(created.key)
    agent = await runner.create_agent({"name": "by runner", "scope": "roster", "config": soul()})
    assert agent.created_by is not None
    forbidden = await api_error(runner.create_key("runner"))
    assert (forbidden.status_code, forbidden.code) == (403, "forbidden")
    read_only = open_client(reader.key)
    assert [a.id for a in await read_only.iter_agents()] == [agent.id]
    refused = await api_error(read_only.archive_agent(agent.id))
    assert (refused.status_code, refused.code) == (403, "forbidden")

    revoked = await admin.revoke_key(created.id)
    assert revoked.revoked_at is not None
    assert (await admin.revoke_key(created.id)).revoked_at == revoked.revoked_at
    locked_out = await api_error(runner.list_agents())
    assert locked_out.status_code == 401
    unknown = await api_error(admin.revoke_key(uuid.uuid4()))
    assert (unknown.status_code, unknown.code) == (404, "key_not_found")
    other_tenant = create_key(live_server.database_url, "t2", ApiKeyRole.ADMIN)
    foreign = await api_error(admin.revoke_key(other_tenant.key_id))
    assert foreign.code == "key_not_found"
    [own_admin] = [k for k in listed.items if k.role is ApiKeyRole.ADMIN]
    last = await api_error(admin.revoke_key(own_admin.id))
    assert (last.status_code, last.code) == (409, "last_admin_key")
