"""Everything about a run request that can be checked without running it.

`POST /v1/runs` calls `validate_run_request` before any row is written; every failure is a
`ValidationFailed` (422) whose `code` is stable and whose `details` name the offending `layer`
and/or `field`. The worker calls `build_compositor` again at execution time with the same
registry, so what was accepted is what runs.

Checks, in order: reserved layer names and families (`llm`, `history`, `output`: at most one
each, under their reserved name); the composition against the allow-list (unknown types, deps);
each layer type's own checks (`LayerRegistry.check_config`: the model providers, MCP servers
and tool endpoints this server knows, tool names and schemas); every layer config; the session
snapshot against the composition (schema version, names and order, CLOSED or ACTIVE entries,
runtime state schemas); `on_exit` layer names; purpose rules (a cleanup run needs a snapshot
and takes no deferred results; an agent run needs an `llm` layer; deferred results need a
`history` layer and a snapshot).
"""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.compositor import (
    Compositor,
    CompositorConfig,
    CompositorError,
    LayerConfigError,
    LayerNodeConfig,
    SnapshotError,
)
from app.config import Settings
from app.errors import ValidationFailed
from app.jsonschema_check import UNSUPPORTED_PATTERN
from app.layers import LayerCheckError, LayerRegistry
from app.layers.base import RESERVED_NAMES, AgentLayer
from app.models import RunPurpose
from app.runs.schemas import CreateRunRequest, RunComposition
from app.runs.snapshots import pending_tool_calls


@dataclass(frozen=True)
class ValidatedRun:
    compositor: Compositor
    configs: dict[str, dict[str, Any]]
    max_model_requests: int
    timeout_seconds: float


def _fail(
    code: str, message: str, *, layer: str | None = None, field: str | None = None
) -> ValidationFailed:
    details: dict[str, Any] = {}
    if layer is not None:
        details["layer"] = layer
    if field is not None:
        details["field"] = field
    return ValidationFailed(message, code=code, details=details)


PLAN_CACHE_SIZE = 256
"""Compositor plans kept per registry (`build_compositor`), least recently used dropped first."""
PLAN_CACHE_MAX_METADATA = 4096
"""A composition whose layer metadata, as JSON, is longer than this is never cached: a plan
holds its metadata, and a full cache of large ones would hold hundreds of request bodies."""

_plans: weakref.WeakKeyDictionary[LayerRegistry, OrderedDict[Hashable, Compositor]] = (
    weakref.WeakKeyDictionary()
)


def build_compositor(composition: RunComposition, registry: LayerRegistry) -> Compositor:
    """The compositor plan of a composition; `ValidationFailed` when the registry rejects it.

    A plan depends only on the layers' names, types, deps and metadata (not on their configs)
    and is immutable, and a workflow engine sends the same few compositions over and over: the
    last `PLAN_CACHE_SIZE` plans a registry built are reused, by the API when it checks a
    request and by the worker when it runs it. A rejected composition is never cached, nor one
    with more than `PLAN_CACHE_MAX_METADATA` characters of metadata.
    """
    metadata = [json.dumps(spec.metadata) if spec.metadata else "" for spec in composition.layers]
    if sum(map(len, metadata)) > PLAN_CACHE_MAX_METADATA:
        return _build_compositor(composition, registry)
    key = tuple(
        (spec.name, spec.type, tuple(spec.deps.items()), layer_metadata)
        for spec, layer_metadata in zip(composition.layers, metadata, strict=True)
    )
    plans = _plans.get(registry)
    if plans is None:
        plans = _plans[registry] = OrderedDict()
    plan = plans.get(key)
    if plan is not None:
        plans.move_to_end(key)
        return plan
    plan = _build_compositor(composition, registry)
    plans[key] = plan
    if len(plans) > PLAN_CACHE_SIZE:
        plans.popitem(last=False)
    return plan


def _build_compositor(composition: RunComposition, registry: LayerRegistry) -> Compositor:
    _check_roles(composition, registry)
    config = CompositorConfig(
        layers=[
            LayerNodeConfig(name=spec.name, type=spec.type, deps=spec.deps, metadata=spec.metadata)
            for spec in composition.layers
        ]
    )
    try:
        return Compositor.from_config(config, providers=registry.providers.values())
    except CompositorError as error:
        raise _fail(error.code, error.message, layer=error.layer, field="composition") from None


def _check_roles(composition: RunComposition, registry: LayerRegistry) -> None:
    seen: dict[str, str] = {}
    for spec in composition.layers:
        layer_type = registry.layer_type(spec.type)
        role = getattr(layer_type, "role", None) if layer_type is not None else None
        reserved_role = RESERVED_NAMES.get(spec.name)
        if reserved_role is not None and role != reserved_role and layer_type is not None:
            raise _fail(
                "reserved_layer_name",
                f"layer {spec.name!r}: the name {spec.name!r} is reserved for the {reserved_role} "
                f"layer, but type {spec.type!r} is not one",
                layer=spec.name,
                field="composition.layers",
            )
        if role is None:
            continue
        if role in seen:
            raise _fail(
                f"duplicate_{role}_layer",
                f"layer {spec.name!r}: a composition has at most one {role} layer "
                f"(already: {seen[role]!r})",
                layer=spec.name,
                field="composition.layers",
            )
        seen[role] = spec.name
        expected = next(name for name, r in RESERVED_NAMES.items() if r == role)
        if spec.name != expected:
            raise _fail(
                "reserved_layer_name",
                f"layer {spec.name!r}: a {role} layer must be named {expected!r}",
                layer=spec.name,
                field="composition.layers",
            )


def check_composition(
    composition: RunComposition,
    registry: LayerRegistry,
    *,
    tenant_id: str,
    snapshot: dict[str, Any] | None = None,
) -> tuple[Compositor, dict[str, dict[str, Any]]]:
    """The layer checks of a run: reserved names and roles, the allow-list and deps, each type's
    own checks against what the server offers (model providers, MCP servers, tool endpoints),
    every config, and the snapshot when there is one. Returns the plan and the configs it runs.

    Saving an agent version runs these same checks on the composition its node runs would get
    (`app.agents.checks`), so both answer the same codes.
    """
    compositor = build_compositor(composition, registry)
    configs = server_configs(composition, tenant_id=tenant_id)
    for spec in composition.layers:
        try:
            registry.check_config(spec.name, spec.type, configs.get(spec.name))
        except LayerCheckError as error:
            field = "composition.layers.config" + (f".{error.field}" if error.field else "")
            raise _fail(
                error.code, f"layer {spec.name!r}: {error.message}", layer=spec.name, field=field
            ) from None
    try:
        compositor.validate(configs=configs, session_snapshot=snapshot)
    except CompositorError as error:
        unsupported = _unsupported_pattern(error)
        if unsupported is not None:
            raise unsupported from None
        field = "session_snapshot" if isinstance(error, SnapshotError) else "composition"
        raise _fail(error.code, error.message, layer=error.layer, field=field) from None
    return compositor, configs


def validate_run_request(
    request: CreateRunRequest,
    registry: LayerRegistry,
    settings: Settings,
    *,
    tenant_id: str,
    snapshot: dict[str, Any] | None = None,
) -> ValidatedRun:
    """Check a request; raise `ValidationFailed` with a precise code, or return the plan.

    `snapshot` is the incoming snapshot: the request's own, or its session's (see
    `app.sessions.scope.resolve_snapshot`).
    """
    compositor, configs = check_composition(
        request.composition, registry, tenant_id=tenant_id, snapshot=snapshot
    )
    names = set(compositor.names)
    for name in request.on_exit.layers:
        if name not in names:
            raise _fail(
                "unknown_on_exit_layer",
                f"on_exit names layer {name!r}, which the composition does not have",
                layer=name,
                field="on_exit.layers",
            )
    has_llm = "llm" in names
    has_history = any(
        getattr(compositor.layer_type(name), "role", None) == "history" for name in names
    )
    if request.purpose is RunPurpose.CLEANUP:
        if snapshot is None:
            raise _fail(
                "snapshot_required",
                "a cleanup run needs the session snapshot whose resources it releases",
                field="session_snapshot",
            )
        if request.deferred_tool_results is not None:
            raise _fail(
                "deferred_results_not_allowed",
                "a cleanup run runs no model, so it takes no deferred tool results",
                field="deferred_tool_results",
            )
    elif not has_llm:
        raise _fail(
            "llm_layer_required",
            "an agent run needs a model layer named 'llm' (for example type 'llm.test')",
            field="composition.layers",
        )
    if request.deferred_tool_results is not None:
        if not has_history:
            raise _fail(
                "history_layer_required",
                "deferred tool results continue a conversation: add the 'history' layer",
                field="deferred_tool_results",
            )
        if snapshot is None:
            raise _fail(
                "snapshot_required",
                "deferred tool results need the snapshot of the paused run",
                field="session_snapshot",
            )
    if request.purpose is RunPurpose.AGENT:
        _check_deferred_answers(request, snapshot)
    limits = request.limits
    return ValidatedRun(
        compositor=compositor,
        configs=configs,
        max_model_requests=min(
            limits.max_model_requests or settings.run_max_model_requests,
            settings.run_max_model_requests,
        ),
        timeout_seconds=min(
            limits.timeout_seconds or settings.run_max_timeout_seconds,
            settings.run_max_timeout_seconds,
        ),
    )


def _unsupported_pattern(error: CompositorError) -> ValidationFailed | None:
    """A layer config whose JSON schema holds a regex the linear-time engine cannot run."""
    cause = error.__cause__
    if not isinstance(error, LayerConfigError) or not isinstance(cause, ValidationError):
        return None
    for item in cause.errors():
        if item["type"] == UNSUPPORTED_PATTERN:
            failure = _fail(
                UNSUPPORTED_PATTERN,
                f"layer {error.layer!r}: {item['msg']}",
                layer=error.layer,
                field="composition.layers.config." + ".".join(str(p) for p in item["loc"]),
            )
            failure.details["schema_path"] = (item.get("ctx") or {}).get("schema_path", "")
            return failure
    return None


def _check_deferred_answers(request: CreateRunRequest, snapshot: dict[str, Any] | None) -> None:
    """A paused conversation continues only with an answer to each pending call, and nothing
    else: otherwise the run is refused before it exists, and the pause stays as it was."""
    pending = pending_tool_calls(snapshot)
    pending_ids = sorted(str(call["tool_call_id"]) for call in pending)
    answers = request.deferred_tool_results
    if answers is None:
        if pending:
            raise ValidationFailed(
                f"the conversation is paused on {len(pending)} tool call(s) "
                f"({', '.join(pending_ids)}); resume it with `deferred_tool_results` answering "
                "each of them",
                code="deferred_results_required",
                details={"field": "deferred_tool_results", "pending_tool_call_ids": pending_ids},
            )
        return
    given = sorted(answers.answered())
    if given != pending_ids:
        missing = sorted(set(pending_ids) - set(given))
        unknown = sorted(set(given) - set(pending_ids))
        raise ValidationFailed(
            "`deferred_tool_results` must answer exactly the pending tool calls "
            f"({', '.join(pending_ids) or 'none'}); missing: {', '.join(missing) or 'none'}, "
            f"unknown: {', '.join(unknown) or 'none'}",
            code="deferred_results_mismatch",
            details={
                "field": "deferred_tool_results",
                "pending_tool_call_ids": pending_ids,
                "missing": missing,
                "unknown": unknown,
            },
        )


def server_configs(composition: RunComposition, *, tenant_id: str) -> dict[str, dict[str, Any]]:
    """The layer configs as the server runs them (`execution_context.tenant_id` forced)."""
    configs: dict[str, dict[str, Any]] = {}
    for spec in composition.layers:
        config = dict(spec.config or {})
        if spec.type == "execution_context":
            config["tenant_id"] = tenant_id
        configs[spec.name] = config
    return configs


def replayable_specs(composition: RunComposition, registry: LayerRegistry) -> list[dict[str, Any]]:
    """The composition without the layers a cleanup replay must not carry (model, tools)."""
    specs = []
    for spec in composition.layers:
        layer_type = registry.layer_type(spec.type)
        if (
            layer_type is not None
            and issubclass(layer_type, AgentLayer)
            and not layer_type.session_replayable
        ):
            continue
        specs.append(spec.model_dump(mode="json"))
    return specs
