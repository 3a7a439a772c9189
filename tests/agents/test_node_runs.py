"""Node runs: binding → agent snapshot → composition → a session-scoped run."""

from __future__ import annotations

from typing import Any

from tests.agents.support import binding_path, create_agent, job, roster_binding, save_version, soul
from tests.api_fixtures import Api, ApiFactory, create_key
from tests.fake_anthropic import FakeAnthropic

RUNS = "/v1/workflow-runs/{run}/nodes/{node}/runs"


def bind(api: Api, agent_id: str, *, node: str = "node-1", **job_fields: Any) -> dict[str, Any]:
    body = roster_binding(agent_id, node_job_config=job(**job_fields))
    response = api.client.put(binding_path(node=node), json=body, headers=api.headers())
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def node_run(
    api: Api, *, run: str = "wr-1", node: str = "node-1", key: str | None = None, **fields: Any
) -> Any:
    body = {"workflow_id": "wf-1", "workflow_version": "draft", "node_execution_id": "ex-1"}
    body.update(fields)
    return api.client.post(RUNS.format(run=run, node=node), json=body, headers=api.headers(key))


DECLARED = [
    {"name": "summary", "type": "string"},
    {"name": "score", "type": "number"},
    {"name": "tags", "type": "array", "array_item": {"type": "string"}, "required": False},
]


def test_a_node_run_produces_output_that_matches_the_declared_outputs(api: Api) -> None:
    agent = create_agent(api)
    bind(api, agent["id"], declared_outputs=DECLARED)

    response = node_run(api, inputs={"query": "rate this", "previous_node_outputs": {"n0": 1}})

    assert response.status_code == 202, response.text
    run = api.wait(response.json()["id"])
    assert run["status"] == "succeeded", run
    assert set(run["output"]) == {"summary", "score"}
    assert isinstance(run["output"]["summary"], str)
    assert isinstance(run["output"]["score"], int | float)
    assert run["metadata"]["agent_id"] == agent["id"]
    names = [entry["name"] for entry in run["session_snapshot"]["layers"]]
    assert names == [
        "agent_soul_prompt",
        "workflow_node_job_prompt",
        "workflow_user_prompt",
        "execution_context",
        "history",
        "llm",
        "output",
    ]


def test_the_second_node_run_of_a_workflow_run_resumes_its_session(api: Api) -> None:
    agent = create_agent(api, config=soul(model={"provider": "test", "model": "echo"}))
    bind(api, agent["id"], declared_outputs=[{"name": "answer", "type": "string"}])

    first = api.wait(node_run(api, inputs={"query": "one"}).json()["id"])
    second = api.wait(node_run(api, inputs={"query": "two"}, node_execution_id="ex-2").json()["id"])

    assert first["session_id"] == second["session_id"]
    history = next(e for e in second["session_snapshot"]["layers"] if e["name"] == "history")
    prompts = [
        part["content"]
        for message in history["runtime_state"]["messages"]
        for part in message["parts"]
        if part.get("part_kind") == "user-prompt"
    ]
    assert len(prompts) == 2
    assert "one" in prompts[0] and "two" in prompts[1]
    session = api.client.get(f"/v1/sessions/{second['session_id']}", headers=api.headers()).json()
    assert session["binding_id"] and session["agent_id"] == agent["id"]
    assert session["backend_run_id"] == second["id"]

    other_run = api.wait(node_run(api, run="wr-2", inputs={"query": "x"}).json()["id"])
    assert other_run["session_id"] != first["session_id"]


def test_the_soul_and_job_prompts_become_run_instructions(api: Api) -> None:
    agent = create_agent(
        api,
        config=soul(
            "SOUL-MARKER",
            model={"provider": "test", "model": "t", "settings": {"reply": '{"text": "ok"}'}},
        ),
    )
    bind(
        api, agent["id"], prompt="JOB-MARKER", declared_outputs=[{"name": "text", "type": "string"}]
    )

    run = api.wait(node_run(api).json()["id"])

    assert run["status"] == "succeeded", run
    assert run["output"] == {"text": "ok"}
    events = api.events(run["id"])
    assert events[-1]["type"] == "run_succeeded"


def test_human_contacts_add_the_ask_human_layer_and_the_run_can_pause(api: Api) -> None:
    agent = create_agent(
        api,
        config=soul(
            model={"provider": "test", "model": "t", "settings": {"call_tools": ["ask_human"]}},
            human={"contacts": [{"name": "ops"}]},
        ),
    )
    bind(api, agent["id"])

    paused = api.wait(node_run(api).json()["id"])

    assert paused["status"] == "paused", paused
    call = paused["deferred_tool_call"]
    resumed = node_run(
        api,
        node_execution_id="ex-1b",
        deferred_tool_results={"calls": {call["tool_call_id"]: "approved"}},
    )
    assert resumed.status_code == 202, resumed.text
    done = api.wait(resumed.json()["id"])
    assert done["status"] == "succeeded", done


def test_an_agent_without_a_model_is_422(api: Api) -> None:
    agent = create_agent(api, config={"prompt": {"system_prompt": "no model"}})
    bind(api, agent["id"])

    response = node_run(api)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "agent_model_not_configured"
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_a_model_provider_removed_from_the_server_after_the_save_is_422_at_the_node_run(
    api_factory: ApiFactory,
) -> None:
    before = api_factory(model_providers={"acme": {"base_url": "http://127.0.0.1:9/v1"}})
    agent = create_agent(before, config=soul(model={"provider": "acme", "model": "big"}))
    bind(before, agent["id"])
    before.stop()
    after = api_factory()  # the same database, a server without `acme`

    response = node_run(after)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_model_provider"
    assert after.client.get("/v1/runs", headers=after.headers()).json()["items"] == []


def test_a_node_without_a_binding_is_404(api: Api) -> None:
    response = node_run(api, node="unbound")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "binding_not_found"


def test_a_pinned_binding_runs_the_pinned_version(api: Api) -> None:
    agent = create_agent(
        api,
        config=soul(
            model={"provider": "test", "model": "t", "settings": {"reply": '{"text": "v1"}'}}
        ),
    )
    v1 = agent["active_config_snapshot_id"]
    save_version(
        api,
        agent["id"],
        soul(model={"provider": "test", "model": "t", "settings": {"reply": '{"text": "v2"}'}}),
    )
    declared = [{"name": "text", "type": "string"}]
    pinned = roster_binding(
        agent["id"], snapshot_id=v1, node_job_config=job(declared_outputs=declared)
    )
    api.client.put(binding_path(node="pinned"), json=pinned, headers=api.headers())
    bind(api, agent["id"], node="follow", declared_outputs=declared)

    assert api.wait(node_run(api, node="pinned").json()["id"])["output"] == {"text": "v1"}
    assert api.wait(node_run(api, node="follow").json()["id"])["output"] == {"text": "v2"}


def test_another_tenants_binding_is_404(api: Api) -> None:
    agent = create_agent(api)
    bind(api, agent["id"])
    other = create_key(api.database_url, "t2").key

    response = node_run(api, key=other)

    assert response.status_code == 404


def test_a_node_run_idempotency_key_replays(api: Api) -> None:
    agent = create_agent(api)
    bind(api, agent["id"])

    first = node_run(api, idempotency_key="wr-1:ex-1:attempt-1")
    second = node_run(api, idempotency_key="wr-1:ex-1:attempt-1")

    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]


def test_a_node_run_of_an_agent_on_an_anthropic_provider_uses_llm_anthropic(
    api_factory: ApiFactory, fake_anthropic: FakeAnthropic
) -> None:
    api = api_factory(model_providers={"claude": fake_anthropic.provider("sk-ant-node")})
    agent = create_agent(api, config=soul(model={"provider": "claude", "model": "claude-test"}))
    bind(api, agent["id"], declared_outputs=[{"name": "answer", "type": "string"}])

    run = api.wait(node_run(api, inputs={"query": "hello"}).json()["id"])

    assert run["status"] == "succeeded", run
    assert run["output"] == {"answer": "test"}  # the fake called the output tool
    [request] = fake_anthropic.requests
    assert request.model == "claude-test"
    assert request.api_key == "sk-ant-node"
    assert "hello" in " ".join(request.user_texts)
