"""Process resources: created when the app starts, disposed when it stops.

Nothing connects at import time. `create_app` stores the settings, the layer registry and whether
this process runs a worker on `app.state`; `lifespan` builds the database access (`Database`, with
SQLite's writer), the notifier, the session policy, the key cache and (optionally) the worker, and
exposes them as one typed `AppState`. On shutdown the API stops accepting new runs (503), the
worker drains (see `app.runs.manager`), and the connections close (the registry's HTTP client for
caller-hosted tools included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

from app.config import Settings
from app.db import Database
from app.keys import KeyCache
from app.layers import LayerRegistry
from app.memory import MemoryTrimmer
from app.metrics import Metrics
from app.migrate import head_revision
from app.notifier import Notifier, create_notifier
from app.runs.manager import Worker
from app.runs.runner import AgentRunner
from app.runs.service import QueueQuota, RunDirectory
from app.sessions.scope import SessionStore


@dataclass
class AppState:
    """Everything a request handler may need from the process."""

    settings: Settings
    db: Database
    notifier: Notifier
    registry: LayerRegistry
    policy: SessionStore
    quota: QueueQuota
    directory: RunDirectory
    worker: Worker | None
    metrics: Metrics
    schema_head: str | None
    keys: KeyCache = field(default_factory=KeyCache)
    memory: MemoryTrimmer = field(default_factory=MemoryTrimmer)  # on_trim set by lifespan
    accepting: bool = True


def build_worker(
    settings: Settings,
    db: Database,
    notifier: Notifier,
    registry: LayerRegistry,
    metrics: Metrics,
    policy: SessionStore | None = None,
    directory: RunDirectory | None = None,
) -> Worker:
    return Worker(
        settings,
        db,
        notifier,
        AgentRunner(registry, settings),
        policy or SessionStore(),
        metrics=metrics,
        executing=directory.executing if directory is not None else None,
    )


def open_database(settings: Settings, notifier: Notifier) -> Database:
    return Database(
        settings.database_url,
        notifier,
        pool_size=settings.db_pool_size,
        connect_timeout=settings.db_connect_timeout_seconds,
        writers=settings.db_writers,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    registry: LayerRegistry = app.state.registry
    notifier = create_notifier(settings.database_url)
    db = open_database(settings, notifier)
    await db.start()
    await notifier.start()
    metrics = Metrics()
    policy = SessionStore()
    directory = RunDirectory()
    directory.listen(notifier)
    worker = (
        build_worker(settings, db, notifier, registry, metrics, policy, directory)
        if app.state.run_worker
        else None
    )
    state = AppState(
        settings=settings,
        db=db,
        notifier=notifier,
        registry=registry,
        policy=policy,
        quota=QueueQuota(settings.max_queued_runs_per_tenant),
        directory=directory,
        worker=worker,
        metrics=metrics,
        schema_head=head_revision(),
        keys=KeyCache(settings.key_cache_seconds),
        memory=MemoryTrimmer(on_trim=metrics.memory_trims.inc),
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
        await state.memory.close()
        await notifier.close()
        await db.close()
