"""The interface through which runs reach runtime sessions.

The run service and the worker need three things from sessions: the snapshot a run on a session
scope starts from, occupying the session for the run, and updating it when the run ends.
`app.sessions` implements `SessionPolicy`; the composition root (`app.lifespan`) hands it to the
run service and the worker. `app.runs` never imports `app.sessions`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.runs.outcome import RunOutcome
from app.runs.schemas import SessionScope


@dataclass(frozen=True, slots=True)
class ResolvedSnapshot:
    """The snapshot a run on a session scope starts from, and where it is stored."""

    snapshot: dict[str, Any] | None
    source_run_id: uuid.UUID | None  # the run whose resulting snapshot it is; None if inline


@dataclass(slots=True)
class TerminalRun:
    """What the session policy learns about a run that just ended."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    session_id: uuid.UUID
    session_role: str | None
    layer_specs: list[dict[str, Any]] | None  # the composition a cleanup run can replay


class SessionPolicy(Protocol):
    async def resolve_snapshot(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        scope: SessionScope,
        inline_snapshot: dict[str, Any] | None,
    ) -> ResolvedSnapshot:
        """The snapshot a run on `scope` starts from (read only; `occupy` re-checks it). Raises
        `Conflict` (`workflow_run_closed`) when the scope's workflow run is closed."""

    async def occupy(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        scope: SessionScope,
        *,
        run_id: uuid.UUID,
        expected: ResolvedSnapshot,
    ) -> uuid.UUID:
        """Make `run_id` the session's run in flight; the session's id. Raises `Conflict`
        (`session_busy`) when another run is in flight or the session changed since
        `resolve_snapshot`, and (`workflow_run_closed`) when the scope's workflow run is closed,
        checked atomically with occupying the session."""

    async def on_run_terminal(
        self, session: AsyncSession, run: TerminalRun, outcome: RunOutcome
    ) -> None:
        """Update the run's runtime session in the run's terminal transaction."""
