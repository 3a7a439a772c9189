"""`create_app(settings)` builds the FastAPI application. Nothing connects at import.

Middleware, outermost first: `RequestContextMiddleware` (request id, log context, access log;
outside Starlette's error middleware so a 500 is logged and carries `X-Request-ID` too), then
Starlette's error handling, then the body size cap, then the routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from app import __version__
from app.api import (
    agents,
    bindings,
    compat,
    health,
    keys,
    node_runs,
    runs,
    sessions,
    workflow_runs,
)
from app.api.body_limit import BodySizeLimitMiddleware
from app.api.docs import install_docs
from app.api.errors import ErrorResponse, UnhandledErrorMiddleware, install_error_handlers
from app.api.layer_docs import document_layer_configs
from app.api.request_context import RequestContextMiddleware
from app.api.ui import install_ui
from app.compat import PREFIX as SEED_PREFIX
from app.compositor import LayerProvider
from app.config import Settings, get_settings
from app.layers import LayerRegistry
from app.lifespan import lifespan

COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "`payload_too_large`."},
    422: {
        "model": ErrorResponse,
        "description": "`request_invalid` (the body, path or query does not match the schema; "
        "`details.errors` lists the fields), `unknown_query_parameter` (a query parameter the "
        "route does not declare: `details.parameters` names them, `details.accepted` lists the "
        "route's), `invalid_characters`, or a domain validation code.",
    },
    503: {
        "model": ErrorResponse,
        "description": "`database_unavailable` or `shutting_down`; retry after `Retry-After`.",
    },
}
"""Error responses every `/v1` route can give, in the one error shape."""


class _StrataAPI(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # `add_middleware` would place it inside ServerErrorMiddleware, which answers unhandled
        # errors; wrapping the whole stack lets the 500 carry the request id and its status.
        return RequestContextMiddleware(super().build_middleware_stack())


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
    app = _StrataAPI(
        title="Strata",
        version=__version__,
        description=(
            "Agent-backend service: workflow engines post agent runs, workers execute them "
            "through the layer compositor, and every run ends in exactly one terminal state "
            "with a new session snapshot. Every `/v1` route needs `Authorization: Bearer <key>`. "
            'Errors have one shape: `{"error": {"code", "message", "details"}}`. The seed '
            f"system's run protocol is served on `{SEED_PREFIX}` with the same keys; its "
            'errors are `{"detail": …}`.'
        ),
        openapi_tags=[
            {"name": workflow_runs.TAG, "description": workflow_runs.TAG_DESCRIPTION},
            {"name": compat.TAG, "description": compat.TAG_DESCRIPTION},
        ],
        lifespan=lifespan,
        # Strata reports through `/metrics` and its structured logs. FastAPI's native
        # OpenTelemetry support looks up the global providers on every request to learn that
        # none is configured (~1% of the CPU of a run, bench/README.md): it stays off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # FastAPI's own pages load from public CDNs; `install_docs` serves offline ones.
        docs_url=None,
        redoc_url=None,
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
        workflow_runs.router,
        keys.router,
    ):
        app.include_router(router, responses=COMMON_ERRORS)
    # The seed protocol declares its own error responses, in its own shape.
    app.include_router(compat.router)
    install_docs(app)
    install_ui(app)
    document_layer_configs(app, app.state.registry)
    return app
