"""Prometheus metrics of one process, on a registry of its own (several apps may share a
process in tests, and each must count only itself).

Process-local series (this worker): runs finished by status, run durations, runs in flight,
runs and events its retention passes deleted, event streams open, their frames and how they
ended, memory given back after streams ended.
Database-wide gauges (all processes): runs by status, queue depth, and the live workers with the
runs each executes, refreshed at each scrape.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Run, RunStatus
from app.models.base import utcnow
from app.runs.repository import list_workers


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
        self.workers_live = Gauge(
            "strata_workers_live",
            "Worker processes whose heartbeat is fresher than the lease (all processes).",
            registry=self.registry,
        )
        self.retention_runs_deleted = Counter(
            "strata_retention_runs_deleted_total",
            "Terminal runs this process's retention passes deleted (STRATA_RETENTION_DAYS).",
            registry=self.registry,
        )
        self.retention_events_deleted = Counter(
            "strata_retention_events_deleted_total",
            "Events deleted with those runs.",
            registry=self.registry,
        )
        self.event_streams_open = Gauge(
            "strata_event_streams_open",
            "Event streams (SSE) this process serves now.",
            registry=self.registry,
        )
        self.event_stream_frames = Counter(
            "strata_event_stream_frames_total",
            "SSE frames (events and keep-alives) this process's event streams handed to their "
            "connections.",
            registry=self.registry,
        )
        self.event_streams_closed = Counter(
            "strata_event_streams_closed_total",
            "Event streams that ended, by reason: completed, client_gone, stalled (the reader "
            "took nothing for STRATA_SSE_STALL_SECONDS), key_revoked.",
            ["reason"],
            registry=self.registry,
        )
        self.memory_trims = Counter(
            "strata_memory_trims_total",
            "Times this process gave freed heap memory back to the system (malloc_trim) after "
            "event streams ended.",
            registry=self.registry,
        )
        self.worker_runs = Gauge(
            "strata_worker_runs_executing",
            "Runs each live worker executes now, by worker id (from the runs table).",
            ["worker"],
            registry=self.registry,
        )

    async def render(self, session: AsyncSession, *, lease_seconds: float) -> bytes:
        rows = (await session.execute(select(Run.status, func.count()).group_by(Run.status))).all()
        counts = {RunStatus(status): int(count) for status, count in rows}
        for status in RunStatus:
            self.runs_by_status.labels(status=status.value).set(counts.get(status, 0))
        self.queue_depth.set(counts.get(RunStatus.QUEUED, 0))
        fresh_after = utcnow() - timedelta(seconds=lease_seconds)
        live = [row for row in await list_workers(session) if row.heartbeat_at >= fresh_after]
        self.workers_live.set(len(live))
        self.worker_runs.clear()
        for row in live:
            self.worker_runs.labels(worker=row.id).set(int(row.executing))
        return generate_latest(self.registry)
