"""Reading runtime sessions, and wait-and-retire.

Retiring one session: wait (woken by the session's notifications) until no run is in flight;
then, if the session holds a snapshot and replayable layer specs, queue a cleanup run that
replays them with the snapshot (the model layer dropped from both, the other names in the same
order) and exits every layer with DELETE; wait for it; the terminal transition of that run marks
the session `cleaned` (`app.sessions.scope.on_run_terminal`). A session with nothing to release
is marked `cleaned` directly. Every step re-reads the row, so calling retire again is safe, and a
session with a run in flight is never retired underneath it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

from sqlalchemy import select

from app.config import Settings
from app.db import SessionFactory, unit_of_work
from app.errors import AppError, NotFound
from app.keys import Principal
from app.layers import LayerRegistry
from app.models import Run, RunPurpose, RuntimeSessionStatus, WorkflowAgentRuntimeSession
from app.models.base import utcnow
from app.notifier import Notifier, run_topic, session_topic
from app.runs import service as runs
from app.runs.schemas import CreateRunRequest, OnExit, RunComposition, RunLayerSpec
from app.sessions.schemas import RetireReport, RetireResult
from app.sessions.scope import RETIRE_ROLE

_CLEANUP_MIN_WAIT = 30.0


async def get_session(
    factory: SessionFactory, principal: Principal, session_id: uuid.UUID
) -> WorkflowAgentRuntimeSession:
    async with factory() as session:
        row = await session.scalar(
            select(WorkflowAgentRuntimeSession).where(
                WorkflowAgentRuntimeSession.id == session_id,
                WorkflowAgentRuntimeSession.tenant_id == principal.tenant_id,
            )
        )
    if row is None:
        raise NotFound("session not found", code="session_not_found")
    return row


async def list_sessions(
    factory: SessionFactory,
    principal: Principal,
    *,
    workflow_run_id: str | None,
    status: RuntimeSessionStatus | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[WorkflowAgentRuntimeSession]:
    table = WorkflowAgentRuntimeSession
    query = select(table).where(table.tenant_id == principal.tenant_id)
    if workflow_run_id is not None:
        query = query.where(table.workflow_run_id == workflow_run_id)
    if status is not None:
        query = query.where(table.status == status)
    if before is not None:
        query = query.where(table.id < before)
    async with factory() as session:
        return list(await session.scalars(query.order_by(table.id.desc()).limit(limit)))


class Retirer:
    """Wait-and-retire for one request."""

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        read_factory: SessionFactory,
        notifier: Notifier,
        registry: LayerRegistry,
        settings: Settings,
        principal: Principal,
    ) -> None:
        self.session_factory = session_factory
        self.read_factory = read_factory
        self.notifier = notifier
        self.registry = registry
        self.settings = settings
        self.principal = principal

    async def retire_workflow_run(
        self, workflow_run_id: str, wait_seconds: float
    ) -> list[RetireReport]:
        """Retire every ACTIVE session of a workflow run, concurrently."""
        rows = await list_sessions(
            self.read_factory,
            self.principal,
            workflow_run_id=workflow_run_id,
            status=RuntimeSessionStatus.ACTIVE,
            before=None,
            limit=10_000,
        )
        return list(await asyncio.gather(*(self.retire(row.id, wait_seconds) for row in rows)))

    async def retire(self, session_id: uuid.UUID, wait_seconds: float) -> RetireReport:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_seconds, self.settings.wait_max_seconds)
        async with self.notifier.subscribe(session_topic(session_id)) as wake:
            while True:
                row = await get_session(self.read_factory, self.principal, session_id)
                if row.status is RuntimeSessionStatus.CLEANED:
                    return RetireReport(
                        session_id=row.id,
                        result=RetireResult.ALREADY_CLEANED,
                        cleanup_run_id=row.cleanup_run_id,
                    )
                if row.current_run_id is None:
                    try:
                        started = await self._start_cleanup(row.id)
                    except AppError as error:  # the stored specs no longer validate, queue full
                        return RetireReport(
                            session_id=row.id,
                            result=RetireResult.CLEANUP_FAILED,
                            reason=f"{error.code}: {error.message}",
                        )
                    if started is None:
                        continue  # a run slipped in, or it was retired meanwhile: look again
                    if started is True:
                        return RetireReport(session_id=row.id, result=RetireResult.CLEANED)
                    return await self._await_cleanup(row.id, started, deadline)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return RetireReport(
                        session_id=row.id,
                        result=RetireResult.STILL_RUNNING,
                        reason=f"run {row.current_run_id} is still in flight",
                    )
                await wake.wait(remaining)

    async def _start_cleanup(self, session_id: uuid.UUID) -> uuid.UUID | Literal[True] | None:
        """Queue the cleanup run (its id), retire at once when nothing needs releasing (True),
        or None when the session is busy or already retired now that it is locked."""
        async with unit_of_work(self.session_factory) as session:
            row = await session.scalar(
                select(WorkflowAgentRuntimeSession)
                .where(WorkflowAgentRuntimeSession.id == session_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if row is None or row.current_run_id is not None:
                return None
            if row.status is RuntimeSessionStatus.CLEANED:
                return None
            request = cleanup_request(row)
            if request is None:
                row.status = RuntimeSessionStatus.CLEANED
                row.cleaned_at = row.updated_at = utcnow()
                await session.flush()
                await self.notifier.notify_in_transaction(session, session_topic(row.id))
                return True
            run, _ = await runs.create_run(
                session,
                principal=self.principal,
                request=request,
                idempotency_key=None,
                registry=self.registry,
                settings=self.settings,
                notifier=self.notifier,
                attach_session=row,
                extra_inputs={"session_role": RETIRE_ROLE},
            )
            row.current_run_id = run.id
            row.updated_at = utcnow()
            await session.flush()
            return run.id

    async def _await_cleanup(
        self, session_id: uuid.UUID, run_id: uuid.UUID, deadline: float
    ) -> RetireReport:
        loop = asyncio.get_running_loop()
        # the cleanup itself gets time even when the caller's wait budget was spent waiting
        cleanup_deadline = max(deadline, loop.time() + _CLEANUP_MIN_WAIT)
        async with self.notifier.subscribe(run_topic(run_id)) as wake:
            while True:
                async with self.read_factory() as session:
                    run = await session.get(Run, run_id)
                assert run is not None
                if run.status.is_terminal:
                    break
                remaining = cleanup_deadline - loop.time()
                if remaining <= 0:
                    return RetireReport(
                        session_id=session_id,
                        result=RetireResult.STILL_RUNNING,
                        cleanup_run_id=run_id,
                        reason="the cleanup run is still running",
                    )
                await wake.wait(remaining)
        if run.status.value == "succeeded":
            return RetireReport(
                session_id=session_id, result=RetireResult.CLEANED, cleanup_run_id=run_id
            )
        return RetireReport(
            session_id=session_id,
            result=RetireResult.CLEANUP_FAILED,
            cleanup_run_id=run_id,
            reason=run.error or run.status.value,
        )


def cleanup_request(row: WorkflowAgentRuntimeSession) -> CreateRunRequest | None:
    """The cleanup run replaying a session's stored specs, or None if nothing holds resources."""
    specs = row.composition_layer_specs or []
    snapshot = row.session_snapshot
    if not specs or snapshot is None:
        return None
    names = [spec["name"] for spec in specs]
    entries: dict[str, Any] = {entry["name"]: entry for entry in snapshot.get("layers", [])}
    if any(name not in entries for name in names):
        return None
    return CreateRunRequest(
        composition=RunComposition(layers=[RunLayerSpec.model_validate(spec) for spec in specs]),
        session_snapshot={
            "schema_version": snapshot.get("schema_version", 1),
            "layers": [entries[name] for name in names],
        },
        purpose=RunPurpose.CLEANUP,
        on_exit=OnExit(default="delete"),
        metadata={
            "strata_lifecycle": "session_cleanup",
            "session_id": str(row.id),
            "previous_run_id": str(row.backend_run_id) if row.backend_run_id else None,
        },
    )
