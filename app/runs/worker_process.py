"""`strata worker`: a process that only executes runs, until SIGTERM or SIGINT.

On the signal it stops claiming, lets in-flight runs finish for `shutdown_grace_seconds`, cancels
the rest (`reason=shutdown`), and exits once every run it held is terminal.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from app.config import Settings
from app.layers import LayerRegistry
from app.lifespan import build_worker, open_database
from app.metrics import Metrics
from app.notifier import create_notifier

log = structlog.get_logger("strata.worker")


async def run_worker_process(settings: Settings, registry: LayerRegistry | None = None) -> None:
    notifier = create_notifier(settings.database_url)
    db = open_database(settings, notifier)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await db.start()
    await notifier.start()
    registry = registry or LayerRegistry.default(settings)
    worker = build_worker(settings, db, notifier, registry, Metrics())
    await worker.start()
    try:
        await stop.wait()
        log.info("worker_signal_received")
    finally:
        await worker.stop()
        await registry.aclose()
        await notifier.close()
        await db.close()
