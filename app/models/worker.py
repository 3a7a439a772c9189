"""Worker processes and their liveness.

One row per process that executes runs (`strata serve` with its in-process worker, or
`strata worker`). Liveness is per worker, not per run: a worker renews `heartbeat_at` with one
statement per `STRATA_HEARTBEAT_SECONDS`, however many runs it executes. A run is lost when the
worker named by its `lease_owner` has a heartbeat older than `STRATA_LEASE_SECONDS`, or no row at
all; any other worker's sweeper then settles it (`app.runs.manager`). A worker never sweeps its
own runs.

`in_flight` is the number of runs the worker executed at its last heartbeat (informational:
`strata workers` and `/metrics` show it); the runs table is the truth.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class Worker(Base):
    """A process that claims and executes runs."""

    __tablename__ = "workers"

    # The lease owner written on the runs it claims: "<host>:<pid>:<random>".
    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    pid: Mapped[int] = mapped_column(nullable=False)
    version: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    concurrency: Mapped[int] = mapped_column(nullable=False)
    in_flight: Mapped[int] = mapped_column(nullable=False, default=0, server_default=sa.text("0"))
    started_at: Mapped[datetime] = mapped_column(nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(nullable=False, index=True)
