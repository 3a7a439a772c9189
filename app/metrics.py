"""Prometheus metrics of one process, on a registry of its own (several apps may share a
process in tests, and each must count only itself).

Process-local series (this worker): runs finished by status, run durations, runs in flight.
Database-wide gauges (all processes): runs by status and queue depth, refreshed at each scrape.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Run, RunStatus


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs_finished = Counter(
            "strata_runs_finished_total",
            "Runs this process brought to a terminal state, by status.",
            ["status"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "strata_run_duration_seconds",
            "From claim to terminal state, for runs this process executed.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "strata_worker_runs_in_flight",
            "Runs this process is executing now.",
            registry=self.registry,
        )
        self.runs_by_status = Gauge(
            "strata_runs",
            "Runs in the database by status (all tenants, all processes).",
            ["status"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "strata_queue_depth",
            "Queued runs waiting for a worker (all tenants).",
            registry=self.registry,
        )

    async def render(self, session: AsyncSession) -> bytes:
        rows = (await session.execute(select(Run.status, func.count()).group_by(Run.status))).all()
        counts = {RunStatus(status): int(count) for status, count in rows}
        for status in RunStatus:
            self.runs_by_status.labels(status=status.value).set(counts.get(status, 0))
        self.queue_depth.set(counts.get(RunStatus.QUEUED, 0))
        return generate_latest(self.registry)
