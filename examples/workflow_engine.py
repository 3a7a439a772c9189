"""A workflow engine's whole conversation with Strata, end to end, with the Python SDK.

Start a server (`./scripts/serve`, http://127.0.0.1:8000 on ./strata.db), make a `runner` key
for it in a second terminal, from the repository root (the command writes to the same database
file the server uses, so run it where `./scripts/serve` runs):

    .venv/bin/strata keys create --tenant default --role runner --label workflow-engine

and run the script with the key it printed:

    STRATA_API_KEY=sk-strata-… .venv/bin/python examples/workflow_engine.py [http://127.0.0.1:8000]

(`--api-key` instead of the variable; the base URL also comes from `STRATA_URL`). It needs no
real model: every agent uses the `test` model provider, which every server has, and which
answers with what the agent's `model.settings` say (`reply`, `call_tools`, `latency_seconds`).

What it does, printing each step (docs/workflow-engines.md explains each of them):

1. creates a roster agent and saves a second version of it;
2. binds three nodes of a workflow version: `summarize` pinned to version 1, `polish` following
   the agent's active version (2), `approve` to a second agent that has a human contact (so its
   node runs get the `ask_human` tool);
3. runs `summarize` twice in one workflow run: the second turn resumes the same runtime
   session, whose history holds both turns;
4. runs `polish` (version 2's answer) and `approve`, which pauses on `ask_human`; resumes it
   with the human's answer in `deferred_tool_results`;
5. starts a slow node and cancels it;
6. closes the workflow run (every session is retired and prints the report), after which
   a node run for it is refused with 409 `workflow_run_closed`.

Names carry a random suffix, so the script can run any number of times against one server. It
exits 0 when everything happened as described, 1 (with the reason on stderr) otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from contextlib import closing
from typing import Any

from app.client import StrataAPIError, StrataClient, StrataError
from app.runs.schemas import RunRead


class Unexpected(Exception):
    """Something did not happen as the docstring says."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Unexpected(message)


def soul(system_prompt: str, **settings: Any) -> dict[str, Any]:
    """An agent config on the `test` provider; `settings` tell the test model what to do."""
    return {
        "prompt": {"system_prompt": system_prompt},
        "model": {"provider": "test", "model": "test", "settings": settings},
    }


def user_prompts(run: RunRead) -> int:
    """How many user turns the session's history layer holds after `run`."""
    layers = (run.session_snapshot or {}).get("layers", [])
    history = next(layer for layer in layers if layer["name"] == "history")
    return sum(
        1
        for message in history["runtime_state"]["messages"]
        for part in message["parts"]
        if part.get("part_kind") == "user-prompt"
    )


class Engine:
    """The few things a workflow engine keeps: the workflow, its run, and how it calls nodes."""

    def __init__(self, client: StrataClient, suffix: str) -> None:
        self.client = client
        self.workflow_id = f"example-{suffix}"
        self.workflow_version = "v1"
        self.workflow_run_id = f"run-{suffix}"

    def run_node(self, node_id: str, execution: str, **fields: Any) -> RunRead:
        """Post a node run, keyed so that a retry after a lost answer cannot run it twice."""
        body = {
            "workflow_id": self.workflow_id,
            "workflow_version": self.workflow_version,
            "node_execution_id": execution,
            **fields,
        }
        key = f"{self.workflow_run_id}:{execution}"
        return self.client.create_node_run(self.workflow_run_id, node_id, body, idempotency_key=key)

    def finish(self, run: RunRead) -> RunRead:
        return self.client.wait_run(run.id, timeout_seconds=60)


def main(client: StrataClient) -> None:
    suffix = uuid.uuid4().hex[:8]
    engine = Engine(client, suffix)

    print("1. agents and versions")
    writer = client.create_agent(
        {
            "name": f"writer-{suffix}",
            "scope": "roster",
            "config": soul("You write short summaries.", reply='{"summary": "draft (v1)"}'),
        }
    )
    v1 = writer.active_config_snapshot_id
    saved = client.save_version(
        writer.id,
        {
            "operation": "save_new_version",
            "config": soul("You write short summaries.", reply='{"summary": "polished (v2)"}'),
            "version_note": "a better answer",
        },
    )
    expect(saved.agent.active_version == 2, f"the active version is {saved.agent.active_version}")
    print(f"   writer: versions {[v.version for v in client.iter_versions(writer.id)]}")
    approver = client.create_agent(
        {
            "name": f"approver-{suffix}",
            "scope": "roster",
            "config": {
                **soul(
                    "You ask before publishing.",
                    call_tools=["ask_human"],
                    tool_args={"ask_human": {"question": "Publish the summary?"}},
                    reply='{"decision": "published"}',
                ),
                "human": {"contacts": [{"name": "editor"}]},
            },
        }
    )
    slow = client.create_agent(
        {
            "name": f"slow-{suffix}",
            "scope": "roster",
            "config": soul("You take your time.", latency_seconds=30),
        }
    )

    print("2. bindings")
    summary_output = [{"name": "summary", "type": "string"}]

    def bind(node_id: str, agent_id: uuid.UUID, snapshot_id: Any = None, **job: Any) -> None:
        binding = client.put_binding(
            engine.workflow_id,
            engine.workflow_version,
            node_id,
            {
                "binding_type": "roster_agent",
                "agent_id": str(agent_id),
                "snapshot_id": str(snapshot_id) if snapshot_id is not None else None,
                "app_id": "example-app",
                "node_job_config": job,
            },
        )
        how = "pinned" if binding.snapshot_id is not None else "following"
        print(f"   {node_id}: {how}, runs version {binding.resolved_version}")

    bind("summarize", writer.id, v1, workflow_prompt="Summarise.", declared_outputs=summary_output)
    bind("polish", writer.id, workflow_prompt="Polish.", declared_outputs=summary_output)
    decision = [{"name": "decision", "type": "string"}]
    bind("approve", approver.id, workflow_prompt="Get approval.", declared_outputs=decision)
    bind("slow", slow.id, workflow_prompt="Think hard.")

    print("3. a multi-turn session")
    first = engine.finish(engine.run_node("summarize", "summarize-1", inputs={"query": "Q1"}))
    expect(first.status.value == "succeeded", f"summarize turn 1 ended {first.status.value}")
    second = engine.finish(engine.run_node("summarize", "summarize-2", inputs={"query": "Q2"}))
    expect(second.status.value == "succeeded", f"summarize turn 2 ended {second.status.value}")
    expect(second.session_id == first.session_id, "the second turn has another session")
    expect(user_prompts(second) == 2, f"the history holds {user_prompts(second)} turns")
    print(f"   turn 1: {json.dumps(first.output)}")
    print(f"   turn 2: {json.dumps(second.output)}, same session, history of 2 turns")
    replay = engine.run_node("summarize", "summarize-2", inputs={"query": "Q2"})
    expect(replay.id == second.id, "the same idempotency key ran the node again")
    print("   a retried request with the same idempotency key: the same run")

    print("4. following, pause and resume")
    polished = engine.finish(engine.run_node("polish", "polish-1", inputs={"query": "Q1"}))
    expect(polished.output == {"summary": "polished (v2)"}, f"polish said {polished.output}")
    print(f"   polish: {json.dumps(polished.output)}")
    paused = engine.finish(engine.run_node("approve", "approve-1"))
    expect(paused.status.value == "paused", f"approve ended {paused.status.value}")
    calls = paused.deferred_tool_calls or []
    expect([c.tool_name for c in calls] == ["ask_human"], f"pending calls: {calls}")
    print(f"   approve paused: {calls[0].tool_name}({json.dumps(calls[0].args)})")
    try:
        engine.run_node("approve", "approve-2")
        raise Unexpected("a node run without the answer was accepted")
    except StrataAPIError as error:
        expect(error.code == "deferred_results_required", f"refused with {error.code}")
        print(f"   a turn without the answer: {error.status_code} {error.code}")
    answers = {"calls": {calls[0].tool_call_id: "Yes, publish it."}}
    resumed = engine.finish(engine.run_node("approve", "approve-2", deferred_tool_results=answers))
    expect(resumed.status.value == "succeeded", f"the resumed run ended {resumed.status.value}")
    expect(resumed.session_id == paused.session_id, "the resume ran on another session")
    print(f"   resumed with the answer: {json.dumps(resumed.output)}")

    print("5. cancel")
    running = engine.run_node("slow", "slow-1")
    with closing(client.iter_events(running.id)) as events:
        for event in events:  # live events: cancel once a worker runs it
            if event.type == "run_started":
                break
    client.cancel_run(running.id, reason="the workflow moved on")
    cancelled = engine.finish(running)
    expect(cancelled.status.value == "cancelled", f"the slow run ended {cancelled.status.value}")
    print(f"   slow: {cancelled.status.value}")

    print("6. close the workflow run")
    report = client.close_workflow_run(engine.workflow_run_id, wait_seconds=30)
    for session in sorted(report.reports, key=lambda session: session.node_id or ""):
        print(f"   {session.node_id}: {session.result.value}")
    expect(len(report.reports) == 4, f"{len(report.reports)} sessions were reported")
    results = {session.result.value for session in report.reports}
    expect(results <= {"cleaned", "already_cleaned"}, f"close results: {sorted(results)}")
    expect(report.active_sessions == 0, f"{report.active_sessions} sessions are still active")
    try:
        engine.run_node("summarize", "summarize-3")
        raise Unexpected("a node run after close was accepted")
    except StrataAPIError as error:
        expect(error.code == "workflow_run_closed", f"a node run after close: {error.code}")
        print(f"   a node run after close: {error.status_code} {error.code}")
    print("done: every session of the workflow run is cleaned")


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "base_url", nargs="?", default=os.environ.get("STRATA_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--api-key", default=os.environ.get("STRATA_API_KEY"))
    args = parser.parse_args()
    if not args.api_key:
        parser.error("set STRATA_API_KEY or pass --api-key (see `strata keys create`)")
    try:
        with StrataClient(args.base_url, args.api_key) as client:
            main(client)
    except (Unexpected, StrataError) as error:
        print(f"unexpected: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
