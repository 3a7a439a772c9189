"""Reading runtime sessions, and wait-and-retire.

Retiring one session: wait (woken by the session's notifications) until no run is in flight;
then, if the session holds a snapshot and replayable layer specs, queue a cleanup run that
replays them with the snapshot (the model layer dropped from both, the other names in the same
order) and exits every layer with DELETE; wait for it; the terminal transition of that run marks
the session `cleaned` (`app.sessions.scope.SessionStore.on_run_terminal`). A session with nothing
to release is marked `cleaned` directly. Every step re-reads the row, so calling retire again is
safe, and a session with a run in flight is never retired underneath it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.errors import AppError, NotFound, ValidationFailed
from app.keys import Principal
from app.layers import LayerRegistry
from app.models import RunPurpose, RunStatus, RuntimeSessionStatus
from app.models.base import utcnow
from app.notifier import Notifier, notify, run_topic, session_topic
from app.runs import repository as runs_repository
from app.runs import service as runs
from app.runs.policy import ResolvedSnapshot, SessionPolicy
from app.runs.schemas import CreateRunRequest, OnExit, RunComposition, RunLayerSpec
from app.sessions import repository
from app.sessions.schemas import RetireReport, RetireResult, SessionRead
from app.sessions.scope import RETIRE_ROLE

_CLEANUP_MIN_WAIT = 30.0
RETIRE_CONCURRENCY = 8
"""Sessions one request retires at once: each holds a connection only briefly, but a workflow
run may have thousands; the rest wait their turn (and the request's one deadline)."""


def session_read(row: Any) -> SessionRead:
    return SessionRead.model_validate(row._mapping)


async def get_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> SessionRead:
    row = await repository.get(session, principal.tenant_id, session_id)
    if row is None:
        raise NotFound("session not found", code="session_not_found")
    return session_read(row)


async def list_sessions(
    session: AsyncSession,
    principal: Principal,
    *,
    workflow_run_id: str | None,
    node_id: str | None = None,
    status: RuntimeSessionStatus | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[SessionRead]:
    rows = await repository.list_sessions(
        session,
        principal.tenant_id,
        workflow_run_id=workflow_run_id,
        node_id=node_id,
        status=status,
        before=before,
        limit=limit,
    )
    return [session_read(row) for row in rows]


class Retirer:
    """Wait-and-retire for one request."""

    def __init__(
        self,
        *,
        db: Database,
        notifier: Notifier,
        registry: LayerRegistry,
        settings: Settings,
        policy: SessionPolicy,
        principal: Principal,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.registry = registry
        self.settings = settings
        self.policy = policy
        self.principal = principal

    async def retire_workflow_run(
        self,
        workflow_run_id: str,
        wait_seconds: float,
        *,
        before: uuid.UUID | None = None,
        limit: int = 100,
    ) -> tuple[list[RetireReport], uuid.UUID | None]:
        """Retire the sessions of a workflow run, a page at a time (newest first), at most
        `RETIRE_CONCURRENCY` at once, all within one `wait_seconds`; every session of the page is
        reported, those retired before as `already_cleaned`. Returns the reports and the id to
        continue after, when there are more."""
        rows = await self.db.read(
            list_sessions,
            self.principal,
            workflow_run_id=workflow_run_id,
            status=None,
            before=before,
            limit=limit + 1,
        )
        page = rows[:limit]
        deadline = asyncio.get_running_loop().time() + min(
            wait_seconds, self.settings.wait_max_seconds
        )
        gate = asyncio.Semaphore(RETIRE_CONCURRENCY)

        async def one(row: SessionRead) -> RetireReport:
            async with gate:
                return await self.retire(row.id, deadline=deadline)

        reports = list(await asyncio.gather(*(one(row) for row in page)))
        return reports, page[-1].id if len(rows) > limit else None

    async def retire(
        self,
        session_id: uuid.UUID,
        wait_seconds: float = 0.0,
        *,
        deadline: float | None = None,
    ) -> RetireReport:
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + min(wait_seconds, self.settings.wait_max_seconds)
        seen_active = False
        async with self.notifier.subscribe(session_topic(session_id)) as wake:
            while True:
                row = await self.db.read(get_session, self.principal, session_id)
                where = {
                    "session_id": row.id,
                    "node_id": row.node_id,
                    "binding_id": row.binding_id,
                    "agent_id": row.agent_id,
                    "last_run_id": row.backend_run_id,
                }
                if row.status is RuntimeSessionStatus.CLEANED:
                    return _cleaned_report(row, where, during_this_call=seen_active)
                seen_active = True
                if row.current_run_id is None:
                    try:
                        started = await self.db.write(self._start_cleanup, row.id)
                    except AppError as error:  # the stored specs no longer validate, queue full
                        return RetireReport(
                            **where,
                            result=RetireResult.CLEANUP_FAILED,
                            reason=f"{error.code}: {error.message}",
                        )
                    if started is None:
                        continue  # a run slipped in, or it was retired meanwhile: look again
                    if started is True:
                        return RetireReport(**where, result=RetireResult.CLEANED)
                    report = await self._await_cleanup(row.id, started, deadline)
                    return report.model_copy(update=where)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return RetireReport(
                        **where,
                        result=RetireResult.STILL_RUNNING,
                        current_run_id=row.current_run_id,
                        reason=f"run {row.current_run_id} is still in flight",
                    )
                await wake.wait(remaining)

    async def _start_cleanup(
        self, session: AsyncSession, session_id: uuid.UUID
    ) -> uuid.UUID | Literal[True] | None:
        """Queue the cleanup run (its id), retire at once when nothing needs releasing (True),
        or None when the session is busy or already retired now that it is locked."""
        row = await repository.lock(session, session_id)
        if row is None or row.current_run_id is not None:
            return None
        if row.status == RuntimeSessionStatus.CLEANED:
            return None
        snapshot = (
            await repository.snapshot_of_run(session, row.snapshot_run_id)
            if row.snapshot_run_id is not None
            else None
        )
        request = cleanup_request(row, snapshot)
        now = utcnow()
        if request is None:
            await repository.change(
                session,
                row.id,
                status=RuntimeSessionStatus.CLEANED,
                cleaned_at=now,
                updated_at=now,
            )
            notify(session, session_topic(row.id))
            return True
        prepared = runs.prepare_run(
            request,
            tenant_id=self.principal.tenant_id,
            registry=self.registry,
            settings=self.settings,
            resolved=ResolvedSnapshot(request.session_snapshot, None),
            key=None,
            fingerprint=runs.NO_FINGERPRINT,
            session_id=row.id,
            extra_inputs={"session_role": RETIRE_ROLE},
        )
        run, _ = await runs.insert_run(session, prepared, policy=self.policy)
        await repository.change(session, row.id, current_run_id=run.id, updated_at=now)
        return run.id

    async def _await_cleanup(
        self, session_id: uuid.UUID, run_id: uuid.UUID, deadline: float
    ) -> RetireReport:
        loop = asyncio.get_running_loop()
        # the cleanup itself gets time even when the caller's wait budget was spent waiting
        cleanup_deadline = max(deadline, loop.time() + _CLEANUP_MIN_WAIT)
        async with self.notifier.subscribe(run_topic(run_id)) as wake:
            while True:
                async with self.db.reading() as session:
                    run = await runs_repository.get_run(session, self.principal.tenant_id, run_id)
                if run is None:
                    raise NotFound("run not found", code="run_not_found")
                if RunStatus(run.status).is_terminal:
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
        if run.status == RunStatus.SUCCEEDED:
            return RetireReport(
                session_id=session_id, result=RetireResult.CLEANED, cleanup_run_id=run_id
            )
        return RetireReport(
            session_id=session_id,
            result=RetireResult.CLEANUP_FAILED,
            cleanup_run_id=run_id,
            reason=run.error or str(run.status),
        )


def _cleaned_report(
    row: SessionRead, where: dict[str, Any], *, during_this_call: bool
) -> RetireReport:
    """The report of a session found `cleaned`: `already_cleaned` when it was so at the first
    look, `cleaned` when it became so while this call waited (its run in flight ended and
    released every layer, e.g. a cancelled one, or a concurrent retire cleaned it)."""
    if not during_this_call:
        return RetireReport(
            **where, result=RetireResult.ALREADY_CLEANED, cleanup_run_id=row.cleanup_run_id
        )
    reason = (
        f"its last run {row.backend_run_id} left no layer holding resources"
        if row.cleanup_run_id is None and row.backend_run_id is not None
        else None
    )
    return RetireReport(
        **where, result=RetireResult.CLEANED, cleanup_run_id=row.cleanup_run_id, reason=reason
    )


def cleanup_request(row: Any, snapshot: dict[str, Any] | None) -> CreateRunRequest | None:
    """The cleanup run replaying a session's stored specs for the layers that still hold
    resources (suspended in its snapshot), or None when none does.

    Layers the snapshot has closed, never entered or does not list are left out (there is
    nothing of theirs to release),
    unless a kept layer depends on one: that one is replayed as a fresh layer (it enters and is
    deleted), so the composition stays valid. Raises `ValidationFailed` when the stored specs no
    longer parse.
    """
    specs = row.composition_layer_specs or []
    if not specs or snapshot is None:
        return None
    entries: dict[str, Any] = {entry["name"]: entry for entry in snapshot.get("layers", [])}
    try:
        layers = [RunLayerSpec.model_validate(spec) for spec in specs]
    except ValidationError as error:
        raise ValidationFailed(
            f"the session's stored layer specs no longer parse: {error.error_count()} error(s)",
            code="invalid_stored_specs",
        ) from None

    def suspended(name: str) -> bool:
        return bool(entries.get(name, {}).get("lifecycle_state") == "suspended")

    keep = {layer.name for layer in layers if suspended(layer.name)}
    if not keep:
        return None
    by_name = {layer.name: layer for layer in layers}
    pending = list(keep)
    while pending:  # a kept layer's dependencies are kept too
        for target in by_name[pending.pop()].deps.values():
            if target in by_name and target not in keep:
                keep.add(target)
                pending.append(target)
    kept = [layer for layer in layers if layer.name in keep]
    return CreateRunRequest(
        composition=RunComposition(layers=kept),
        session_snapshot={
            "schema_version": snapshot.get("schema_version", 1),
            "layers": [
                entries[layer.name]
                if suspended(layer.name)
                else {"name": layer.name, "lifecycle_state": "new", "runtime_state": {}}
                for layer in kept
            ],
        },
        purpose=RunPurpose.CLEANUP,
        on_exit=OnExit(default="delete"),
        metadata={
            "strata_lifecycle": "session_cleanup",
            "session_id": str(row.id),
            "previous_run_id": str(row.backend_run_id) if row.backend_run_id else None,
        },
    )
