"""Node runs: "run node N of workflow run R with these inputs" becomes a normal run.

`build_node_run` resolves binding → agent → effective config snapshot and builds the
composition, always with the same layer names in the same order for a given binding, so the
next node run of the same workflow run resumes the session's snapshot:

    agent_soul_prompt        plain.prompt   the soul's system prompt
    workflow_node_job_prompt plain.prompt   the node's job (mode + workflow prompt)
    workflow_user_prompt     plain.prompt   the user prompt built from the inputs (per run)
    execution_context        execution_context   tenant, app, workflow, run, node, agent ids
    history                  pydantic_ai.history
    ask_human                ask_human      only when human contacts are configured
    llm                      llm.test (provider `test`), or llm.openai / llm.anthropic after the
                             kind of the configured provider
    output                   output.json_schema   from the declared outputs (or the defaults)

The run is attached to the runtime-session scope (workflow run, node, binding, agent), so
sessions resume, retire and report busy exactly as for any session-scoped run. Errors: 404
`binding_not_found`; 409 `workflow_run_closed`; 422 `agent_model_not_configured` when the soul
names no model (and every other run validation error, e.g. `unknown_model_provider`).

**One agent version per workflow run.** A binding that pins no snapshot follows its agent; the
first node run of a workflow run that resolves such a binding fixes the agent's snapshot it
resolved to (`workflow_run_agent_versions`), and every later node run of that workflow run, on
any node following the same agent, uses that snapshot. Editing the agent therefore never changes
the composition under a live session (a new `ask_human` layer would not match the session's
snapshot; a new prompt would silently switch the conversation); the edit applies from the next
workflow run. The version is fixed in the transaction that queues the node run (after its
session is occupied, so a closed workflow run fixes nothing), first writer wins: a node run that
loses that race to a concurrent one is built again with the winner's snapshot.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents.bindings import ResolvedBinding, resolve_binding
from app.agents.schemas import NodeRunInputs, NodeRunRequest
from app.config import ModelProviderKind, ModelProviderSettings, Settings
from app.db import Database
from app.errors import NotFound, ValidationFailed
from app.keys import Principal
from app.layers import TEST_PROVIDER, LayerRegistry
from app.runs import service as runs
from app.runs.policy import SessionPolicy
from app.runs.schemas import (
    CreateRunRequest,
    RunComposition,
    RunLayerSpec,
    RunRead,
    SessionScope,
)
from app.runs.service import QueueQuota, RunDirectory
from app.schemas.agent_config import (
    AgentSoulConfig,
    DeclaredOutputConfig,
    JobMode,
    OutputType,
    WorkflowNodeJobConfig,
)

_FALLBACK_USER_PROMPT = "Carry out the job described in your instructions for this workflow step."


def build_node_run(
    resolved: ResolvedBinding,
    request: NodeRunRequest,
    *,
    tenant_id: str,
    workflow_run_id: str,
    node_id: str,
    model_providers: Mapping[str, ModelProviderSettings] | None = None,
) -> CreateRunRequest:
    """The run request for one node execution (see the module docstring).

    `model_providers` (the server's) decides the model layer type of a configured provider; an
    unknown provider gets `llm.openai`, which the run validation then rejects by name.
    """
    binding, agent, snapshot = resolved
    soul = resolved.soul_config()
    job = resolved.job_config()
    if soul.model is None:
        raise ValidationFailed(
            f"agent {agent.name!r} has no model configured; save a version with `model`",
            code="agent_model_not_configured",
            details={"agent_id": str(agent.id), "snapshot_id": str(snapshot.id)},
        )
    layers = node_layers(
        soul,
        job,
        user_prompt=_user_prompt(request.inputs),
        context={
            "tenant_id": tenant_id,
            "app_id": binding.app_id,
            "workflow_id": request.workflow_id,
            "workflow_run_id": workflow_run_id,
            "node_id": node_id,
            "node_execution_id": request.node_execution_id,
            "agent_id": str(agent.id),
            "agent_config_snapshot_id": str(snapshot.id),
            "invoke_from": "workflow_run",
        },
        model_providers=model_providers or {},
    )
    return CreateRunRequest(
        composition=RunComposition(layers=layers),
        session=SessionScope(
            app_id=binding.app_id,
            workflow_id=request.workflow_id,
            workflow_run_id=workflow_run_id,
            node_id=node_id,
            node_execution_id=request.node_execution_id,
            binding_id=str(binding.id),
            agent_id=str(agent.id),
            agent_config_snapshot_id=str(snapshot.id),
        ),
        deferred_tool_results=request.deferred_tool_results,
        limits=request.limits,
        retry=request.retry,
        metadata={
            **request.metadata,
            "workflow_run_id": workflow_run_id,
            "node_id": node_id,
            "node_execution_id": request.node_execution_id,
            "binding_id": str(binding.id),
            "agent_id": str(agent.id),
            "agent_config_snapshot_id": str(snapshot.id),
        },
        idempotency_key=request.idempotency_key,
    )


def node_layers(
    soul: AgentSoulConfig,
    job: WorkflowNodeJobConfig,
    *,
    user_prompt: str,
    context: dict[str, Any],
    model_providers: Mapping[str, ModelProviderSettings],
) -> list[RunLayerSpec]:
    """The layers of a node run (module docstring), in order; without `llm` when the soul names
    no model. Also what an agent version is checked against when it is saved
    (`app.agents.checks`), so a save is refused exactly when a node run would be."""
    layers = [
        _prompt("agent_soul_prompt", prefix=soul.prompt.system_prompt),
        _prompt("workflow_node_job_prompt", prefix=_job_prompt(job)),
        _prompt("workflow_user_prompt", user=user_prompt),
        RunLayerSpec(name="execution_context", type="execution_context", config=context),
        RunLayerSpec(name="history", type="pydantic_ai.history"),
    ]
    if soul.human.contacts or job.human_contacts:
        layers.append(RunLayerSpec(name="ask_human", type="ask_human"))
    if soul.model is not None:
        layers.append(_model_layer(soul, model_providers))
    layers.append(
        RunLayerSpec(
            name="output",
            type="output.json_schema",
            config={"json_schema": declared_outputs_schema(job.effective_declared_outputs())},
        )
    )
    return layers


def _prompt(name: str, *, prefix: str = "", user: str = "") -> RunLayerSpec:
    return RunLayerSpec(name=name, type="plain.prompt", config={"prefix": prefix, "user": user})


def _job_prompt(job: WorkflowNodeJobConfig) -> str:
    if not job.workflow_prompt.strip():
        return ""
    if job.mode is JobMode.LET_AGENT_FIGURE_IT_OUT:
        return f"Your goal in this workflow step (plan the steps yourself):\n{job.workflow_prompt}"
    return f"Your job in this workflow step (follow these instructions):\n{job.workflow_prompt}"


def _user_prompt(inputs: NodeRunInputs) -> str:
    """The node's user prompt from its inputs (a fixed request when there are none)."""
    parts = []
    if inputs.query:
        parts.append(f"User query:\n{inputs.query}")
    if inputs.previous_node_outputs:
        rendered = "\n".join(
            f"- {name}: {json.dumps(value, ensure_ascii=False)}"
            for name, value in inputs.previous_node_outputs.items()
        )
        parts.append(f"Outputs of earlier workflow steps (for this run only):\n{rendered}")
    return "\n\n".join(parts) or _FALLBACK_USER_PROMPT


def _model_layer(
    soul: AgentSoulConfig, providers: Mapping[str, ModelProviderSettings]
) -> RunLayerSpec:
    model = soul.model
    assert model is not None
    settings: dict[str, Any] = dict(model.settings or {})
    if model.provider == TEST_PROVIDER:
        # the deterministic model takes its demo knobs from the soul's model settings
        allowed = {"reply", "latency_seconds", "call_tools", "tool_args", "stream_chunk_chars"}
        return RunLayerSpec(
            name="llm",
            type="llm.test",
            config={key: value for key, value in settings.items() if key in allowed},
        )
    provider = providers.get(model.provider)
    anthropic = provider is not None and provider.kind is ModelProviderKind.ANTHROPIC
    return RunLayerSpec(
        name="llm",
        type="llm.anthropic" if anthropic else "llm.openai",
        config={"provider": model.provider, "model": model.model, "settings": settings},
    )


def declared_outputs_schema(outputs: tuple[DeclaredOutputConfig, ...]) -> dict[str, Any]:
    """A JSON schema (type object) with one property per declared output."""
    properties = {output.name: _output_schema(output) for output in outputs}
    return {
        "type": "object",
        "properties": properties,
        "required": [output.name for output in outputs if output.required],
        "additionalProperties": False,
    }


def _output_schema(output: DeclaredOutputConfig) -> dict[str, Any]:
    schema = _type_schema(output.type)
    if output.type is OutputType.ARRAY:
        item = output.array_item.type if output.array_item is not None else OutputType.OBJECT
        schema["items"] = _type_schema(item)
    if output.description:
        schema["description"] = output.description
    return schema


def _type_schema(kind: OutputType) -> dict[str, Any]:
    if kind is OutputType.FILE:
        return {"type": "string", "description": "a file reference"}
    return {"type": kind.value}


class _VersionRaced(Exception):
    """A concurrent node run of the workflow run fixed another snapshot of the agent first."""


class _FixVersion:
    """The insert hook that fixes the snapshot a following binding resolved to (see the module
    docstring); raises `_VersionRaced` when another one was fixed first."""

    def __init__(
        self, tenant_id: uuid.UUID, workflow_run_id: str, resolved: ResolvedBinding
    ) -> None:
        self.tenant_id = tenant_id
        self.workflow_run_id = workflow_run_id
        self.agent_id = resolved.agent.id
        self.snapshot_id = resolved.snapshot.id

    async def __call__(self, session: AsyncSession) -> None:
        fixed = await repository.fix_snapshot(
            session, self.tenant_id, self.workflow_run_id, self.agent_id, self.snapshot_id
        )
        if fixed != self.snapshot_id:
            raise _VersionRaced


async def resolve_for_workflow_run(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    workflow_run_id: str,
    workflow_id: str,
    workflow_version: str,
    node_id: str,
) -> tuple[ResolvedBinding, _FixVersion | None]:
    """The node's binding resolved for this workflow run: a pinned snapshot as pinned; a
    following binding to the snapshot fixed for the workflow run, or, when none is fixed yet, to
    the agent's active snapshot together with the hook that fixes it. Reads only."""
    resolved = await resolve_binding(session, tenant_id, workflow_id, workflow_version, node_id)
    binding, agent, snapshot = resolved
    if binding.current_snapshot_id is not None:
        return resolved, None
    fixed_id = await repository.fixed_snapshot_id(session, tenant_id, workflow_run_id, agent.id)
    if fixed_id is None:
        return resolved, _FixVersion(tenant_id, workflow_run_id, resolved)
    if fixed_id != snapshot.id:
        fixed = await repository.get_snapshot(session, tenant_id, fixed_id)
        if fixed is None:  # impossible: the fixed snapshot is a foreign key, never deleted
            raise NotFound("the fixed snapshot does not exist", code="agent_snapshot_not_found")
        resolved = ResolvedBinding(binding, agent, fixed)
    return resolved, None


async def create_node_run(
    db: Database,
    *,
    principal: Principal,
    workflow_run_id: str,
    node_id: str,
    body: NodeRunRequest,
    idempotency_key: str | None,
    registry: LayerRegistry,
    settings: Settings,
    policy: SessionPolicy,
    quota: QueueQuota,
    directory: RunDirectory | None = None,
) -> tuple[RunRead, bool]:
    """Run a workflow node's bound agent: resolve the binding (for this workflow run), build the
    composition, queue the run on the node's runtime session. (run, created); created is False
    for a replay.

    The idempotency fingerprint covers what the caller sent (the workflow run, the node and the
    request body), not the composition built from it: a retry after the agent was edited is
    still a replay of the same request.
    """

    async def attempt() -> tuple[RunRead, bool]:
        resolved, fix = await db.read(
            resolve_for_workflow_run,
            principal.tenant_id,
            workflow_run_id,
            body.workflow_id,
            body.workflow_version,
            node_id,
        )
        request = build_node_run(
            resolved,
            body,
            tenant_id=str(principal.tenant_id),
            workflow_run_id=workflow_run_id,
            node_id=node_id,
            model_providers=registry.model_providers,
        )
        return await runs.create_run(
            db,
            principal=principal,
            request=request,
            idempotency_key=idempotency_key,
            registry=registry,
            settings=settings,
            policy=policy,
            quota=quota,
            directory=directory,
            fingerprint=lambda: node_run_fingerprint(workflow_run_id, node_id, body),
            on_insert=fix,
        )

    try:
        return await attempt()
    except _VersionRaced:
        # the winner's row is committed: this time the binding resolves to it, with no hook
        return await attempt()


def node_run_fingerprint(workflow_run_id: str, node_id: str, body: NodeRunRequest) -> str:
    """SHA-256 of the canonical JSON of a node-run request as its caller sent it."""
    sent = {
        "workflow_run_id": workflow_run_id,
        "node_id": node_id,
        "body": body.model_dump(mode="json"),
    }
    canonical = json.dumps(sent, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
