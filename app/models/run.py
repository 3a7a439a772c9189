"""Runs and their append-only event log.

A run row stores everything a worker needs to execute the request (composition, inputs, incoming
session snapshot), so any worker process can claim it. The columns group as:

- request: `purpose`, `composition`, `inputs` (on_exit, deferred_tool_results, limits…), the
  incoming snapshot, `session_id`, `metadata`, and idempotency (`idempotency_key` unique per
  tenant; `request_fingerprint` is the SHA-256 of the normalized request, to tell a replay from a
  conflicting reuse of the key; empty for a run without a key, which nothing compares).
- execution: `attempt` / `max_attempts` (a lost worker's run may be retried as a new attempt; a
  stale attempt's writes are fenced by comparing `attempt`), `lease_owner` (the worker executing
  the attempt; its liveness is the `workers` row, see `app.models.worker`), and cancellation
  (`cancel_requested_at`, `cancel_reason`).
- result: `output`, `deferred_tool_calls`, `session_snapshot` (the snapshot the run ended with),
  `usage`, and for failures `error`, `error_type`, `reason`.

Snapshots are stored once. A run's incoming snapshot is either the request's own
(`session_snapshot_in`, when the caller sent one inline) or a reference to the run whose
resulting snapshot it continues (`snapshot_in_run_id`: a runtime session's latest state), never a
copy of it. The terminal event does not repeat the resulting snapshot either: readers of the event
log get it from `session_snapshot` (`app.runs.service`).

Invariants:

- `status` moves `queued → running → (cancelling →) terminal`; a queued run may also go straight to
  `cancelled`. Exactly one terminal transition happens, in the same transaction as the terminal
  event; `TERMINAL_RUN_STATUSES` lists the terminal states.
- `run_events` rows are numbered per run by `seq` = 1, 2, 3… with no gaps: the writer increments
  `runs.last_event_seq` in the same transaction as it inserts the event, so the run row's lock
  serializes concurrent writers and `seq` never repeats. The terminal event has the largest `seq`.
- Events go with their run: `run_events.run_id` cascades on delete (the retention sweeper deletes
  old runs only).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    JSONType,
    StrEnumType,
    created_at_column,
    enum_check,
    id_column,
    tenant_column,
    updated_at_column,
    utcnow,
)

REASON_MAX_CHARS = 64
"""Length of `runs.reason`; a failure's reason may be an exception's class name, cut to it."""


class RunStatus(StrEnum):
    """Lifecycle of a run."""

    QUEUED = "queued"  # stored, waiting for a worker to claim it
    RUNNING = "running"  # claimed by a worker that holds the lease
    CANCELLING = "cancelling"  # cancel requested; the worker is exiting the layers
    SUCCEEDED = "succeeded"  # terminal: output and new snapshot stored
    PAUSED = "paused"  # terminal: waits for deferred tool results (resumed by a new run)
    FAILED = "failed"  # terminal: error, error_type and reason stored
    CANCELLED = "cancelled"  # terminal: cancelled before or while running

    @property
    def is_terminal(self) -> bool:
        """True for the states a run never leaves."""
        return self in TERMINAL_RUN_STATUSES


TERMINAL_RUN_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.PAUSED, RunStatus.FAILED, RunStatus.CANCELLED}
)
"""States a run never leaves; each run reaches exactly one of them."""


class RunPurpose(StrEnum):
    """Why a run exists."""

    AGENT = "agent"  # runs the agent (a model call loop) over the composition
    CLEANUP = "cleanup"  # no model: enters every layer and exits with DELETE to free resources


class Run(Base):
    """One execution request and its outcome."""

    __tablename__ = "runs"
    __table_args__ = (
        enum_check("status", RunStatus),
        enum_check("purpose", RunPurpose),
        # NULL keys never collide (NULLs are distinct in unique constraints on both databases).
        sa.UniqueConstraint("tenant_id", "idempotency_key"),
        sa.Index(None, "tenant_id", "status", "created_at"),
        # `GET /v1/runs?created_after=…&created_before=…` without a status filter
        sa.Index(None, "tenant_id", "created_at"),
        # claim the oldest queued run; find the executing runs (sweeper, per-worker counts)
        sa.Index(None, "status", "queued_at"),
        # a worker's runs (its reconciliation at each heartbeat); only rows with an owner
        sa.Index(
            None,
            "lease_owner",
            sqlite_where=sa.text("lease_owner IS NOT NULL"),
            postgresql_where=sa.text("lease_owner IS NOT NULL"),
        ),
        # retention: the oldest finished runs first (`app.retention`); only terminal runs
        sa.Index(
            None,
            "finished_at",
            sqlite_where=sa.text("finished_at IS NOT NULL"),
            postgresql_where=sa.text("finished_at IS NOT NULL"),
        ),
        # retention: is this run the snapshot a queued or running run starts from?
        sa.Index(
            None,
            "snapshot_in_run_id",
            sqlite_where=sa.text("snapshot_in_run_id IS NOT NULL"),
            postgresql_where=sa.text("snapshot_in_run_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column()
    status: Mapped[RunStatus] = mapped_column(
        StrEnumType(RunStatus),
        nullable=False,
        default=RunStatus.QUEUED,
        server_default=RunStatus.QUEUED.value,
    )
    purpose: Mapped[RunPurpose] = mapped_column(
        StrEnumType(RunPurpose),
        nullable=False,
        default=RunPurpose.AGENT,
        server_default=RunPurpose.AGENT.value,
    )
    attempt: Mapped[int] = mapped_column(nullable=False, default=1, server_default=sa.text("1"))
    max_attempts: Mapped[int] = mapped_column(
        nullable=False, default=1, server_default=sa.text("1")
    )

    # --- request ------------------------------------------------------------------------------
    composition: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    session_snapshot_in: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # The run whose resulting `session_snapshot` this run starts from (no FK: retention may
    # delete old runs; it never deletes a snapshot a live session or a queued run still needs).
    snapshot_in_run_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    request_fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("workflow_agent_runtime_sessions.id"), nullable=True, index=True
    )
    # `metadata` is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, nullable=False, default=dict
    )

    # --- execution ----------------------------------------------------------------------------
    lease_owner: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    last_event_seq: Mapped[int] = mapped_column(
        nullable=False, default=0, server_default=sa.text("0")
    )

    # --- result -------------------------------------------------------------------------------
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    deferred_tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSONType, nullable=True
    )
    session_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    error_type: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(sa.String(REASON_MAX_CHARS), nullable=True)

    # --- timestamps ---------------------------------------------------------------------------
    created_at: Mapped[datetime] = created_at_column()
    # Set when the run (or its retry attempt) entered the queue; claimers take the oldest first.
    queued_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = updated_at_column()


class RunEvent(Base):
    """One event of a run, numbered by `seq` within the run."""

    __tablename__ = "run_events"

    run_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    tenant_id: Mapped[uuid.UUID] = tenant_column(index=True)
    type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at_column()
