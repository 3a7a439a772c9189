"""`create_app(settings)` builds the FastAPI application. Nothing connects at import."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

from app import __version__
from app.api import agents, bindings, health, keys, node_runs, runs, sessions
from app.api.body_limit import BodySizeLimitMiddleware
from app.api.errors import ErrorResponse, UnhandledErrorMiddleware, install_error_handlers
from app.compositor import LayerProvider
from app.config import Settings, get_settings
from app.layers import LayerRegistry
from app.lifespan import lifespan

COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "`payload_too_large`."},
    422: {
        "model": ErrorResponse,
        "description": "`request_invalid` (the body, path or query does not match the schema; "
        "`details.errors` lists the fields) or a domain validation code.",
    },
    503: {
        "model": ErrorResponse,
        "description": "`database_unavailable` or `shutting_down`; retry after `Retry-After`.",
    },
}
"""Error responses every `/v1` route can give, in the one error shape."""


def create_app(
    settings: Settings | None = None,
    *,
    run_worker: bool = True,
    extra_layer_providers: Iterable[LayerProvider[Any]] = (),
    registry: LayerRegistry | None = None,
) -> FastAPI:
    """The application. `run_worker=False` serves the API only (`strata serve --no-worker`).

    `extra_layer_providers` adds layer types to the built-in allow-list (embedders, tests).
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="Strata",
        version=__version__,
        description=(
            "Agent-backend service: workflow engines post agent runs, workers execute them "
            "through the layer compositor, and every run ends in exactly one terminal state "
            "with a new session snapshot. Every `/v1` route needs `Authorization: Bearer <key>`. "
            'Errors have one shape: `{"error": {"code", "message", "details"}}`.'
        ),
        lifespan=lifespan,
    )
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.state.settings = settings
    app.state.run_worker = run_worker
    app.state.registry = registry or LayerRegistry.default(settings, extra=extra_layer_providers)
    install_error_handlers(app)
    app.include_router(health.router)
    for router in (
        runs.router,
        sessions.router,
        agents.router,
        bindings.router,
        node_runs.router,
        keys.router,
    ):
        app.include_router(router, responses=COMMON_ERRORS)
    return app
