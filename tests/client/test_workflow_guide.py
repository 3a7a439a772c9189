"""The claims of docs/workflow-engines.md, checked through the SDK against a live server.

Each test names the guide's section it checks. What a node run builds is read back from the
API: the run's snapshot names every layer, and the session's `composition_layer_specs` holds
every layer but the model with its config.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.client import StrataAPIError, StrataClient
from app.models import RunStatus, RuntimeSessionStatus
from app.runs.schemas import RunRead
from tests.client.workflow_support import node_run, roster_binding, soul
from tests.server_fixtures import LiveServer

LAYERS = [
    "agent_soul_prompt",
    "workflow_node_job_prompt",
    "workflow_user_prompt",
    "execution_context",
    "history",
    "llm",
    "output",
]
FALLBACK = "Carry out the job described in your instructions for this workflow step."


def agent(client: StrataClient, config: dict[str, Any]) -> uuid.UUID:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    return client.create_agent({"name": name, "scope": "roster", "config": config}).id


def finish(client: StrataClient, run: RunRead) -> RunRead:
    return client.wait_run(run.id, timeout_seconds=30)


def layer_names(run: RunRead) -> list[str]:
    assert run.session_snapshot is not None, run
    return [entry["name"] for entry in run.session_snapshot["layers"]]


def specs(client: StrataClient, run: RunRead) -> dict[str, dict[str, Any]]:
    assert run.session_id is not None
    stored = client.get_session(run.session_id).composition_layer_specs or []
    return {spec["name"]: spec for spec in stored}


def history_parts(run: RunRead) -> list[tuple[str, Any]]:
    assert run.session_snapshot is not None
    [history] = [e for e in run.session_snapshot["layers"] if e["name"] == "history"]
    return [
        (part["part_kind"], part.get("content"))
        for message in history["runtime_state"]["messages"]
        for part in message["parts"]
    ]


def refused(call: Any, *args: Any, **kwargs: Any) -> StrataAPIError:
    with pytest.raises(StrataAPIError) as raised:
        call(*args, **kwargs)
    return raised.value


def test_the_composition_layers_their_order_and_what_each_field_becomes(
    live_server: LiveServer,
) -> None:
    """Section "The node-run composition"."""
    client = live_server.client()
    writer = agent(
        client, {**soul('{"summary": "s", "score": 1}'), "prompt": {"system_prompt": "SOUL"}}
    )
    declared = [
        {"name": "summary", "type": "string", "description": "one line"},
        {"name": "score", "type": "number"},
        {"name": "attachments", "type": "array", "array_item": {"type": "file"}, "required": False},
        {"name": "items", "type": "array", "required": False},
    ]
    job = {
        "mode": "let_agent_figure_it_out",
        "workflow_prompt": "JOB",
        "declared_outputs": declared,
    }
    client.put_binding("wf-1", "v1", "n1", roster_binding(writer, **job))
    plain_agent = agent(client, soul())  # no reply: the test model fills the required outputs
    client.put_binding("wf-1", "v1", "n2", roster_binding(plain_agent, workflow_prompt="  "))

    inputs = {"query": "Q?", "previous_node_outputs": {"extract": {"title": "T"}, "count": 2}}
    run = finish(
        client,
        client.create_node_run("wr-1", "n1", node_run(inputs=inputs, metadata={"engine": "e"})),
    )

    assert run.status is RunStatus.SUCCEEDED, run
    assert run.output == {"summary": "s", "score": 1}
    assert layer_names(run) == LAYERS
    stored = specs(client, run)
    assert list(stored) == [name for name in LAYERS if name != "llm"]
    assert {name: spec["type"] for name, spec in stored.items()} == {
        "agent_soul_prompt": "plain.prompt",
        "workflow_node_job_prompt": "plain.prompt",
        "workflow_user_prompt": "plain.prompt",
        "execution_context": "execution_context",
        "history": "pydantic_ai.history",
        "output": "output.json_schema",
    }
    assert stored["agent_soul_prompt"]["config"] == {"prefix": "SOUL", "user": ""}
    assert stored["workflow_node_job_prompt"]["config"]["prefix"] == (
        "Your goal in this workflow step (plan the steps yourself):\nJOB"
    )
    assert stored["workflow_user_prompt"]["config"] == {
        "prefix": "",
        "user": "User query:\nQ?\n\nOutputs of earlier workflow steps (for this run only):\n"
        '- extract: {"title": "T"}\n- count: 2',
    }
    binding = client.get_binding("wf-1", "v1", "n1")
    context = stored["execution_context"]["config"]
    assert {key: value for key, value in context.items() if key != "tenant_id"} == {
        "app_id": "app-1",
        "workflow_id": "wf-1",
        "workflow_run_id": "wr-1",
        "node_id": "n1",
        "node_execution_id": "ex-1",
        "agent_id": str(writer),
        "agent_config_snapshot_id": str(binding.resolved_snapshot_id),
        "invoke_from": "workflow_run",
    }
    assert stored["output"]["config"]["json_schema"] == {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "one line"},
            "score": {"type": "number"},
            "attachments": {
                "type": "array",
                "items": {"type": "string", "description": "a file reference"},
            },
            "items": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["summary", "score"],
        "additionalProperties": False,
    }
    assert run.metadata == {
        "engine": "e",
        "workflow_run_id": "wr-1",
        "node_id": "n1",
        "node_execution_id": "ex-1",
        "binding_id": str(binding.id),
        "agent_id": str(writer),
        "agent_config_snapshot_id": str(binding.resolved_snapshot_id),
    }

    plain = finish(client, client.create_node_run("wr-1", "n2", node_run()))
    assert plain.status is RunStatus.SUCCEEDED, plain
    stored = specs(client, plain)
    assert stored["workflow_node_job_prompt"]["config"]["prefix"] == ""
    assert stored["workflow_user_prompt"]["config"]["user"] == FALLBACK
    assert stored["output"]["config"]["json_schema"] == {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "files": {
                "type": "array",
                "items": {"type": "string", "description": "a file reference"},
            },
            "json": {"type": "object"},
        },
        "required": [],
        "additionalProperties": False,
    }
    client.put_binding("wf-1", "v1", "n3", roster_binding(plain_agent, workflow_prompt="Do X."))
    told = finish(client, client.create_node_run("wr-1", "n3", node_run()))
    assert specs(client, told)["workflow_node_job_prompt"]["config"]["prefix"] == (
        "Your job in this workflow step (follow these instructions):\nDo X."
    )


def test_the_test_provider_keeps_only_its_knobs_from_model_settings(
    live_server: LiveServer,
) -> None:
    """Section "The node-run composition", Model."""
    client = live_server.client()
    config = {
        "model": {
            "provider": "test",
            "model": "any-name",
            "settings": {"reply": '{"text": "from settings"}', "temperature": 0.3, "seed": 1},
        }
    }
    client.put_binding("wf-1", "v1", "n", roster_binding(agent(client, config)))

    run = finish(client, client.create_node_run("wr-1", "n", node_run()))

    assert run.status is RunStatus.SUCCEEDED, run
    assert run.output == {"text": "from settings"}
    no_model = agent(client, {"prompt": {"system_prompt": "no model"}})
    client.put_binding("wf-1", "v1", "bare", roster_binding(no_model))
    error = refused(client.create_node_run, "wr-1", "bare", node_run())
    assert (error.status_code, error.code) == (422, "agent_model_not_configured")


def test_human_contacts_add_ask_human_between_history_and_the_model(
    live_server: LiveServer,
) -> None:
    """Section "Human contacts and ask_human"."""
    client = live_server.client()
    on_agent = agent(client, soul(human={"contacts": [{"name": "ops"}]}))
    plain = agent(client, soul())
    client.put_binding("wf-1", "v1", "a", roster_binding(on_agent))
    client.put_binding("wf-1", "v1", "b", roster_binding(plain, human_contacts=[{"name": "lead"}]))
    with_contacts = [*LAYERS[:5], "ask_human", *LAYERS[5:]]
    for node in ("a", "b"):
        run = finish(client, client.create_node_run("wr-1", node, node_run()))
        assert layer_names(run) == with_contacts, node
        assert specs(client, run)["ask_human"]["config"] is None

    secret = refused(
        client.create_agent,
        {
            "name": "leaky",
            "scope": "roster",
            "config": soul(human={"contacts": [{"api_key": "x"}]}),
        },
    )
    assert (secret.status_code, secret.code) == (422, "request_invalid")


def test_a_resume_must_answer_exactly_the_pending_calls(live_server: LiveServer) -> None:
    """Section "Resuming a paused node"."""
    client = live_server.client()
    config = soul(human={"contacts": [{"name": "ops"}]})
    config["model"]["settings"] = {
        "call_tools": ["ask_human"],
        "tool_args": {"ask_human": {"question": "Publish?", "title": "Review"}},
        "reply": '{"text": "ok"}',
    }
    client.put_binding("wf-1", "v1", "n", roster_binding(agent(client, config)))

    paused = finish(client, client.create_node_run("wr-1", "n", node_run()))

    assert paused.status is RunStatus.PAUSED, paused
    assert paused.deferred_tool_calls is not None
    [call] = paused.deferred_tool_calls
    assert (call.tool_name, call.kind, call.args) == (
        "ask_human",
        "call",
        {"question": "Publish?", "title": "Review"},
    )
    assert call.metadata == {"layer_type": "ask_human", "title": "Review"}
    assert paused.deferred_tool_call == call

    required = refused(client.create_node_run, "wr-1", "n", node_run("ex-2"))
    assert (required.status_code, required.code) == (422, "deferred_results_required")
    assert required.details["pending_tool_call_ids"] == [call.tool_call_id]
    wrong = node_run("ex-2", deferred_tool_results={"calls": {"other": 1}})
    mismatch = refused(client.create_node_run, "wr-1", "n", wrong)
    assert (mismatch.status_code, mismatch.code) == (422, "deferred_results_mismatch")
    assert mismatch.details["missing"] == [call.tool_call_id]
    assert mismatch.details["unknown"] == ["other"]
    assert paused.session_id is not None
    session = client.get_session(paused.session_id)
    assert (session.backend_run_id, session.current_run_id) == (paused.id, None)

    answer = {"calls": {call.tool_call_id: {"approved": True, "by": "ops"}}}
    resumed = client.create_node_run(
        "wr-1", "n", node_run("ex-2", deferred_tool_results=answer, inputs={"query": "go on"})
    )
    done = finish(client, resumed)

    assert done.status is RunStatus.SUCCEEDED, done
    assert done.session_id == paused.session_id
    parts = history_parts(done)
    returned = parts.index(("tool-return", {"approved": True, "by": "ops"}))
    assert parts[returned + 1] == ("user-prompt", "User query:\ngo on")


def test_a_busy_session_is_409_and_a_failed_turn_starts_the_next_one_fresh(
    live_server: LiveServer,
) -> None:
    """Sections "Sessions and the workflow-run lifecycle" and "Following a node run"."""
    client = live_server.client()
    slow = soul()
    slow["model"]["settings"] = {"latency_seconds": 2}
    client.put_binding("wf-1", "v1", "n", roster_binding(agent(client, slow)))

    first = client.create_node_run("wr-1", "n", node_run(limits={"timeout_seconds": 0.2}))
    busy = refused(client.create_node_run, "wr-1", "n", node_run("ex-2"))
    assert (busy.status_code, busy.code) == (409, "session_busy")
    assert busy.details["run_id"] == str(first.id)
    failed = finish(client, first)
    assert (failed.status, failed.error_type) == (RunStatus.FAILED, "run_limit_exceeded")
    assert first.session_id is not None
    assert client.get_session(first.session_id).status is RuntimeSessionStatus.CLEANED

    fresh = finish(client, client.create_node_run("wr-1", "n", node_run("ex-3")))
    assert fresh.status is RunStatus.SUCCEEDED, fresh
    assert [kind for kind, _ in history_parts(fresh)].count("user-prompt") == 1


def test_a_binding_edit_that_adds_ask_human_between_turns_is_a_layers_mismatch(
    live_server: LiveServer,
) -> None:
    """Section "The node-run composition", last paragraph."""
    client = live_server.client()
    writer = agent(client, soul())
    client.put_binding("wf-1", "v1", "n", roster_binding(writer))
    finish(client, client.create_node_run("wr-1", "n", node_run()))
    client.put_binding("wf-1", "v1", "n", roster_binding(writer, human_contacts=[{"name": "x"}]))

    error = refused(client.create_node_run, "wr-1", "n", node_run("ex-2"))

    assert (error.status_code, error.code) == (422, "snapshot_layers_mismatch")


def test_the_idempotency_header_wins_over_the_body_key(live_server: LiveServer) -> None:
    """Section "Idempotency keys"."""
    client = live_server.client()
    client.put_binding("wf-1", "v1", "n", roster_binding(agent(client, soul())))
    body = node_run(idempotency_key="in-body")

    run = client.create_node_run("wr-1", "n", body, idempotency_key="in-header")
    replay = client.create_node_run("wr-1", "n", body, idempotency_key="in-header")

    assert run.idempotency_key == "in-header"
    assert replay.id == run.id
    other = refused(client.create_node_run, "wr-2", "n", body, idempotency_key="in-header")
    assert (other.status_code, other.code) == (409, "idempotency_key_reused")
