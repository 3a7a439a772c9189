"""Save-time checks of an agent config: a version that no node run could execute is refused.

Every save of an agent version (create, save a version, save as a new agent, an inline
binding's agent) builds the composition a node run of that config would get
(`app.agents.node_runs.node_layers`, with the default job and placeholder ids) and runs the run
validation's layer checks on it (`app.runs.validation.check_composition`) against this server's
allow-list and configuration. So a save is refused with exactly the code a node run would get:
`unknown_model_provider`, `model_provider_kind_mismatch`, `unknown_layer_type` (a layer type
this server does not allow, e.g. `ask_human` for human contacts), `invalid_layer_config`,
`unsupported_model_setting`… and nothing is stored.

The caller sent a config, not a composition, so `details.field` points into what they sent
(`config.model.provider`, `agent.config.model.settings.temperature`…); `details.layer` still
names the layer, as in a run's error. Messages name only what the caller sent: an unknown
provider is named, the configured ones are not (they are server configuration).

What a save cannot know is checked again when a node runs: the server's configuration may
change after the save (a provider removed), and the node's job adds its own layers.
"""

from __future__ import annotations

from typing import Any

from app.errors import ValidationFailed
from app.layers import LayerRegistry
from app.runs.schemas import RunComposition
from app.runs.validation import check_composition
from app.schemas.agent_config import AgentSoulConfig, WorkflowNodeJobConfig

_PLACEHOLDER = "agent-config-check"
"""The scope ids of the check's composition: a save has no workflow run, node or agent id yet."""

_LAYER_FIELDS = {
    "agent_soul_prompt": "prompt.system_prompt",
    "ask_human": "human.contacts",
    "llm": "model",
}
"""Where in the config each layer of a node run comes from."""

_MODEL_FIELDS = ("provider", "model", "settings")
"""Fields of `llm.openai`/`llm.anthropic` configs named as in `config.model`; an `llm.test`
config is made of `model.settings` keys."""


def check_agent_config(
    config: AgentSoulConfig, registry: LayerRegistry, *, tenant_id: str, field: str = "config"
) -> None:
    """Raise `ValidationFailed` (422) when a node run of `config` would be refused.

    `field` is where the config is in the request (`config`, or `agent.config` in a binding).
    """
    # imported here: node_runs → bindings → service, which checks configs with this function
    from app.agents.node_runs import node_layers

    layers = node_layers(
        config,
        WorkflowNodeJobConfig(),
        user_prompt="",
        context={"tenant_id": tenant_id, **dict.fromkeys(_SCOPE_IDS, _PLACEHOLDER)},
        model_providers=registry.model_providers,
    )
    try:
        check_composition(RunComposition(layers=layers), registry, tenant_id=tenant_id)
    except ValidationFailed as error:
        error.details = _in_config(error.details, field)
        raise


_SCOPE_IDS = (
    "app_id",
    "workflow_id",
    "workflow_run_id",
    "node_id",
    "node_execution_id",
    "agent_id",
    "agent_config_snapshot_id",
)


def _in_config(details: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A run error's `details.field` (a path in the composition) as a path in the config."""
    layer = details.get("layer")
    base = f"{prefix}.{_LAYER_FIELDS[layer]}" if layer in _LAYER_FIELDS else prefix
    run_field = str(details.get("field") or "")
    inner = run_field.removeprefix("composition.layers.config").lstrip(".")
    if layer == "llm" and inner and run_field.startswith("composition.layers.config"):
        head = inner.split(".", 1)[0]
        base = f"{base}.{inner}" if head in _MODEL_FIELDS else f"{base}.settings.{inner}"
    return {**details, "field": base}
