"""The layer compositor: compose typed layers into one agent run and snapshot them between runs.

A composition is an ordered list of named layers. Each run builds a fresh instance of every layer
from a validated config, enters them in order (`on_context_create` for a new session,
`on_context_resume` for a suspended one), aggregates their prompts and tools for the agent, then
exits them in reverse with a DELETE or SUSPEND intent and records a session snapshot: per layer, its
lifecycle state and its runtime state as JSON.

    compositor = Compositor.from_config(config, providers=[LayerProvider.from_layer_type(Prompt)])
    compositor.validate(configs, session_snapshot)  # the pre-enter checks alone, no side effects
    run = compositor.create_run(configs, session_snapshot)  # the same checks, then a run
    async with run:
        run.suspend_on_exit()
        ...  # use run.prompts, run.user_prompts, run.tools, run.get_layer(name)
    store(run.session_snapshot)

Invariants:

- This package imports only the standard library, pydantic and typing_extensions.
- `__all__` is the public surface; the `_`-prefixed modules are internal.
- Every error the compositor raises itself is a `CompositorError` with a stable `code` and the name
  of the offending `layer` (see `_errors` for the codes); errors raised by layer code propagate as
  they are.
- Everything a run receives is validated before the first layer is built or hook runs.
- A `Compositor` is immutable and can be entered by any number of tasks at once; a
  `CompositorRun` is entered once.
"""

from ._compositor import Compositor
from ._deps import LayerDeps, NoLayerDeps
from ._errors import (
    CompositorConfigError,
    CompositorError,
    LayerConfigError,
    LayerDefinitionError,
    LayerDepsError,
    LayerLifecycleError,
    LayerLookupError,
    LayerProviderError,
    SnapshotError,
)
from ._layers import Layer
from ._plain import PlainLayer, PlainTool
from ._providers import LayerProvider
from ._run import CompositorRun, PromptTransformer, ToolTransformer, UserPromptTransformer
from ._schemas import (
    CONFIG_SCHEMA_VERSION,
    SNAPSHOT_SCHEMA_VERSION,
    CompositorConfig,
    CompositorSessionSnapshot,
    EmptyLayerConfig,
    EmptyRuntimeState,
    ExitIntent,
    LayerConfig,
    LayerNodeConfig,
    LayerSessionSnapshot,
    LifecycleState,
)

__all__ = [
    "CONFIG_SCHEMA_VERSION",
    "SNAPSHOT_SCHEMA_VERSION",
    "Compositor",
    "CompositorConfig",
    "CompositorConfigError",
    "CompositorError",
    "CompositorRun",
    "CompositorSessionSnapshot",
    "EmptyLayerConfig",
    "EmptyRuntimeState",
    "ExitIntent",
    "Layer",
    "LayerConfig",
    "LayerConfigError",
    "LayerDefinitionError",
    "LayerDeps",
    "LayerDepsError",
    "LayerLifecycleError",
    "LayerLookupError",
    "LayerNodeConfig",
    "LayerProvider",
    "LayerProviderError",
    "LayerSessionSnapshot",
    "LifecycleState",
    "NoLayerDeps",
    "PlainLayer",
    "PlainTool",
    "PromptTransformer",
    "SnapshotError",
    "ToolTransformer",
    "UserPromptTransformer",
]
