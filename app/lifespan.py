"""Process resources: created when the app starts, disposed when it stops.

Nothing connects at import time. `create_app` stores the settings, the layer registry and whether
this process runs a worker on `app.state`; `lifespan` builds the engine, the session factory, the
notifier and (optionally) the worker, and exposes them as one typed `AppState`. On shutdown the
API stops accepting new runs (503), the worker drains (see `app.runs.manager`), and the
connections close (the registry's HTTP client for caller-hosted tools included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import SessionFactory, create_engine, create_session_factory, read_only
from app.layers import LayerRegistry
from app.metrics import Metrics
from app.migrate import head_revision
from app.notifier import Notifier, create_notifier
from app.runs.manager import Worker
from app.runs.runner import AgentRunner


@dataclass
class AppState:
    """Everything a request handler may need from the process."""

    settings: Settings
    engine: AsyncEngine
    session_factory: SessionFactory
    read_session_factory: SessionFactory
    notifier: Notifier
    registry: LayerRegistry
    worker: Worker | None
    metrics: Metrics
    schema_head: str | None
    accepting: bool = True


def build_worker(
    settings: Settings,
    session_factory: SessionFactory,
    notifier: Notifier,
    registry: LayerRegistry,
    metrics: Metrics,
) -> Worker:
    return Worker(
        settings, session_factory, notifier, AgentRunner(registry, settings), metrics=metrics
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    registry: LayerRegistry = app.state.registry
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        connect_timeout=settings.db_connect_timeout_seconds,
    )
    factory = create_session_factory(engine)
    notifier = create_notifier(settings.database_url)
    await notifier.start()
    metrics = Metrics()
    worker = (
        build_worker(settings, factory, notifier, registry, metrics)
        if app.state.run_worker
        else None
    )
    state = AppState(
        settings=settings,
        engine=engine,
        session_factory=factory,
        read_session_factory=create_session_factory(read_only(engine)),
        notifier=notifier,
        registry=registry,
        worker=worker,
        metrics=metrics,
        schema_head=head_revision(),
    )
    app.state.strata = state
    if worker is not None:
        await worker.start()
    try:
        yield
    finally:
        state.accepting = False
        if worker is not None:
            await worker.stop()
        await registry.aclose()
        await notifier.close()
        await engine.dispose()
