"""`Compositor`: an immutable, validated plan of named layers, entered once per run.

`Compositor.from_config` turns a `CompositorConfig` and the providers allowed on this server into a
plan. `validate` checks what a run would receive (configs, session snapshot) without side effects;
`create_run` / `enter` do the same checks and hand back a `CompositorRun` to enter.

Invariants:

- Construction refuses, with a `CompositorConfigError` naming the layer: empty or duplicate names,
  unknown types, providers without or with duplicate type ids, node providers for unknown names,
  dependency fields the layer's deps class does not declare, required dependency fields left
  unwired, dependencies on missing, later (or the same) layers or on layers of the wrong class. The
  node order is the enter order; no sorting happens.
- Everything a run receives is validated before any layer is built or any hook runs, in this order:
  config keys, each layer's config, the snapshot's shape and version, its layer names (equal to the
  composition's, in order), then per entry: not CLOSED, not ACTIVE, runtime state valid (a NEW
  entry with an empty runtime state gets a fresh one).
- A compositor holds no per-run state: any number of tasks may enter it at the same time.
"""

import json
from collections.abc import Iterable, Mapping
from itertools import zip_longest
from types import MappingProxyType
from typing import Any, final

from pydantic import BaseModel, ValidationError

from ._deps import dependency_fields
from ._errors import CompositorConfigError, LayerConfigError, LayerLookupError, SnapshotError
from ._layers import AnyLayer
from ._providers import LayerProvider
from ._run import (
    CompositorRun,
    LayerNode,
    PreparedLayer,
    PromptTransformer,
    ToolTransformer,
    Transformers,
    UserPromptTransformer,
)
from ._schemas import (
    CONFIG_SCHEMA_VERSION,
    SNAPSHOT_SCHEMA_VERSION,
    CompositorConfig,
    CompositorSessionSnapshot,
    LayerConfig,
    LayerNodeConfig,
    LifecycleState,
    describe_validation_error,
    parse_model,
)


@final
class Compositor:
    """An immutable plan of layer nodes; build it with `from_config`."""

    __slots__ = ("_config", "_names", "_nodes", "_nodes_by_name", "_transformers")

    def __init__(
        self, config: CompositorConfig, nodes: tuple[LayerNode, ...], transformers: Transformers
    ) -> None:
        """Internal: `from_config` validates the plan and calls this."""
        self._config = config
        self._nodes = nodes
        self._names = tuple(node.name for node in nodes)
        self._nodes_by_name = MappingProxyType({node.name: node for node in nodes})
        self._transformers = transformers

    @classmethod
    def from_config(
        cls,
        config: CompositorConfig | Mapping[str, Any] | str | bytes,
        *,
        providers: Iterable[LayerProvider[Any]] = (),
        node_providers: Mapping[str, LayerProvider[Any]] | None = None,
        prompt_transformer: PromptTransformer | None = None,
        user_prompt_transformer: UserPromptTransformer | None = None,
        tool_transformer: ToolTransformer | None = None,
    ) -> "Compositor":
        """Validate a composition against the allowed providers and build the plan.

        `providers` are looked up by the nodes' `type`; `node_providers` override that lookup for
        the named nodes (for instance to inject a server-side dependency into one node). The
        transformers post-process the aggregated prompts, user prompts and tools of every run.

        Raises:
            CompositorConfigError: see the module docstring; the error's `layer` names the node.
            LayerDefinitionError: a deps class has an annotation that cannot be resolved.
        """
        try:
            parsed = parse_model(CompositorConfig, config)
        except ValidationError as error:
            raise CompositorConfigError(
                f"invalid composition: {describe_validation_error(error)}",
                code="invalid_compositor_config",
            ) from error
        if parsed.schema_version != CONFIG_SCHEMA_VERSION:
            raise CompositorConfigError(
                f"composition schema_version {parsed.schema_version} is not supported "
                f"(expected {CONFIG_SCHEMA_VERSION})",
                code="config_version_mismatch",
            )
        by_type = _providers_by_type(providers)
        positions = _positions_by_name(parsed.layers)
        overrides = dict(node_providers or {})
        for name in overrides:
            if name not in positions:
                raise CompositorConfigError(
                    f"layer {name!r}: a node provider is given for a layer the composition does "
                    f"not have; layers: {list(positions)}",
                    code="unknown_node_provider",
                    layer=name,
                )
        nodes: list[LayerNode] = []
        for spec in parsed.layers:
            provider = overrides.get(spec.name) or by_type.get(spec.type)
            if provider is None:
                raise CompositorConfigError(
                    f"layer {spec.name!r}: type {spec.type!r} is not registered; "
                    f"known types: {sorted(by_type)}",
                    code="unknown_layer_type",
                    layer=spec.name,
                )
            _check_dependencies(spec, provider, positions, nodes)
            deps = MappingProxyType(dict(spec.deps))
            nodes.append(LayerNode(name=spec.name, provider=provider, deps=deps))
        transformers = Transformers(
            prompt=prompt_transformer, user_prompt=user_prompt_transformer, tool=tool_transformer
        )
        return cls(parsed, tuple(nodes), transformers)

    # -- inspection -------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """The layer names in enter order."""
        return self._names

    def provider(self, name: str) -> LayerProvider[Any]:
        """The provider that builds layer `name` (raises `LayerLookupError` for unknown names)."""
        return self._node(name).provider

    def layer_type(self, name: str) -> type[AnyLayer]:
        """The layer class of layer `name`, e.g. to read its `runtime_state_type`."""
        return self._node(name).provider.layer_type

    def node_config(self, name: str) -> LayerNodeConfig:
        """A copy of the node spec (`type`, `deps`, `metadata`) layer `name` was built from."""
        self._node(name)  # unknown names raise
        return self._config.layers[self._names.index(name)].model_copy(deep=True)

    def to_config(self) -> CompositorConfig:
        """A copy of the composition this plan was built from."""
        return self._config.model_copy(deep=True)

    # -- runs -------------------------------------------------------------------------------------

    def validate(
        self,
        configs: Mapping[str, object] | None = None,
        session_snapshot: object = None,
    ) -> Mapping[str, LayerConfig]:
        """Run every pre-enter check of a run without building layers or running hooks.

        `configs` maps layer names to raw configs (a missing entry means `{}`);
        `session_snapshot` is `None` (a new session) or anything `CompositorSessionSnapshot`
        validates from. Returns the validated configs by layer name, in composition order.

        Raises:
            LayerConfigError: a config key names no layer (`unknown_config_key`) or a config does
                not validate (`invalid_layer_config`).
            SnapshotError: the snapshot does not fit this composition (see the module docstring).
        """
        prepared = self._prepare(configs, session_snapshot)
        return MappingProxyType({layer.node.name: layer.config for layer in prepared})

    def create_run(
        self,
        configs: Mapping[str, object] | None = None,
        session_snapshot: object = None,
    ) -> CompositorRun:
        """Validate like `validate` and return a run that is not entered yet.

        Enter it with `async with run:`; after it exits (or fails to enter) read
        `run.session_snapshot`. Raises what `validate` raises.
        """
        prepared = self._prepare(configs, session_snapshot)
        return CompositorRun(prepared, self._transformers)

    def enter(
        self,
        configs: Mapping[str, object] | None = None,
        session_snapshot: object = None,
    ) -> CompositorRun:
        """Same as `create_run`; reads well as `async with compositor.enter(...) as run:`."""
        return self.create_run(configs, session_snapshot)

    # -- internals --------------------------------------------------------------------------------

    def _node(self, name: str) -> LayerNode:
        node = self._nodes_by_name.get(name)
        if node is None:
            raise LayerLookupError(
                f"layer {name!r} is not part of the composition; layers: {list(self.names)}",
                code="unknown_layer",
                layer=name,
            )
        return node

    def _prepare(
        self, configs: Mapping[str, object] | None, session_snapshot: object
    ) -> tuple[PreparedLayer, ...]:
        raw_configs = dict(configs or {})
        unknown = [key for key in raw_configs if key not in self._nodes_by_name]
        if unknown:
            raise LayerConfigError(
                f"layer {unknown[0]!r}: configs are given for names that are no layer of the "
                f"composition: {unknown}; layers: {list(self.names)}",
                code="unknown_config_key",
                layer=unknown[0],
            )
        validated = [
            node.provider.validate_config(raw_configs.get(node.name), layer=node.name)
            for node in self._nodes
        ]
        states = self._validate_snapshot(session_snapshot)
        return tuple(
            PreparedLayer(node=node, config=config, lifecycle_state=state, runtime_state=runtime)
            for node, config, (state, runtime) in zip(self._nodes, validated, states, strict=True)
        )

    def _validate_snapshot(self, raw: object) -> list[tuple[LifecycleState, BaseModel | None]]:
        if raw is None:
            return [(LifecycleState.NEW, None) for _ in self._nodes]
        try:
            snapshot = parse_model(CompositorSessionSnapshot, raw)
        except ValidationError as error:
            raise SnapshotError(
                f"invalid session snapshot: {describe_validation_error(error)}",
                code="invalid_snapshot",
            ) from error
        if snapshot.schema_version != SNAPSHOT_SCHEMA_VERSION:
            raise SnapshotError(
                f"session snapshot schema_version {snapshot.schema_version} is not supported "
                f"(expected {SNAPSHOT_SCHEMA_VERSION})",
                code="snapshot_version_mismatch",
            )
        got = tuple(entry.name for entry in snapshot.layers)
        if got != self.names:
            culprit = next(
                expected or actual
                for expected, actual in zip_longest(self.names, got)
                if expected != actual
            )
            raise SnapshotError(
                f"layer {culprit!r}: the session snapshot's layers do not match the composition "
                f"(same names in the same order): expected {list(self.names)}, got {list(got)}",
                code="snapshot_layers_mismatch",
                layer=culprit,
            )
        states: list[tuple[LifecycleState, BaseModel | None]] = []
        for node, entry in zip(self._nodes, snapshot.layers, strict=True):
            if entry.lifecycle_state is LifecycleState.CLOSED:
                raise SnapshotError(
                    f"layer {node.name!r} is closed in the session snapshot; a closed layer "
                    "cannot be entered again",
                    code="snapshot_layer_closed",
                    layer=node.name,
                )
            if entry.lifecycle_state is LifecycleState.ACTIVE:
                raise SnapshotError(
                    f"layer {node.name!r} is active in the session snapshot; snapshots are taken "
                    "after every layer exited",
                    code="snapshot_layer_active",
                    layer=node.name,
                )
            if entry.lifecycle_state is LifecycleState.NEW and not entry.runtime_state:
                # never entered and no state: the layer starts with a fresh runtime state
                states.append((LifecycleState.NEW, None))
                continue
            state_type = node.provider.layer_type.runtime_state_type
            try:
                # Through JSON, the form the state was dumped in, so strict fields round-trip.
                runtime = state_type.model_validate_json(json.dumps(entry.runtime_state))
            except ValidationError as error:
                raise SnapshotError(
                    f"layer {node.name!r}: the runtime state does not match "
                    f"{state_type.__name__}: {describe_validation_error(error)}",
                    code="invalid_runtime_state",
                    layer=node.name,
                ) from error
            states.append((entry.lifecycle_state, runtime))
        return states


def _providers_by_type(providers: Iterable[LayerProvider[Any]]) -> dict[str, LayerProvider[Any]]:
    by_type: dict[str, LayerProvider[Any]] = {}
    for provider in providers:
        type_id = provider.type_id
        if not type_id:
            raise CompositorConfigError(
                f"the provider of {provider.layer_type.__name__} has no type_id; set `type_id` on "
                "the layer class or pass the provider in node_providers",
                code="missing_type_id",
            )
        if type_id in by_type:
            raise CompositorConfigError(
                f"two providers are registered for type {type_id!r}: "
                f"{by_type[type_id].layer_type.__name__} and {provider.layer_type.__name__}",
                code="duplicate_provider_type",
            )
        by_type[type_id] = provider
    return by_type


def _positions_by_name(specs: list[LayerNodeConfig]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for position, spec in enumerate(specs):
        if not spec.name:
            raise CompositorConfigError(
                f"the layer at position {position} (type {spec.type!r}) has an empty name",
                code="empty_layer_name",
            )
        if spec.name in positions:
            raise CompositorConfigError(
                f"layer {spec.name!r}: the name is used by more than one layer",
                code="duplicate_layer_name",
                layer=spec.name,
            )
        positions[spec.name] = position
    return positions


def _check_dependencies(
    spec: LayerNodeConfig,
    provider: LayerProvider[Any],
    positions: Mapping[str, int],
    earlier: list[LayerNode],
) -> None:
    name = spec.name
    deps_type = provider.layer_type.deps_type
    fields = dependency_fields(deps_type)
    for field_name, target in spec.deps.items():
        field = fields.get(field_name)
        if field is None:
            raise CompositorConfigError(
                f"layer {name!r}: {deps_type.__name__} has no dependency field {field_name!r}; "
                f"fields: {sorted(fields)}",
                code="unknown_dependency_field",
                layer=name,
            )
        if target not in positions:
            raise CompositorConfigError(
                f"layer {name!r}: dependency {field_name!r} points to {target!r}, which is not a "
                "layer of the composition",
                code="dependency_not_found",
                layer=name,
            )
        if positions[target] >= positions[name]:
            raise CompositorConfigError(
                f"layer {name!r}: dependency {field_name!r} points to {target!r}, which does not "
                "come before it; dependencies must point to earlier layers",
                code="dependency_order",
                layer=name,
            )
        target_type = earlier[positions[target]].provider.layer_type
        if not issubclass(target_type, field.layer_type):
            raise CompositorConfigError(
                f"layer {name!r}: dependency {field_name!r} needs a {field.layer_type.__name__}, "
                f"but {target!r} is a {target_type.__name__}",
                code="wrong_dependency_type",
                layer=name,
            )
    missing = [
        field.name
        for field in fields.values()
        if not field.optional and field.name not in spec.deps
    ]
    if missing:
        raise CompositorConfigError(
            f"layer {name!r}: required dependencies {missing} of {deps_type.__name__} are not "
            "wired",
            code="missing_dependency",
            layer=name,
        )
