"""What executing a run produces, and (`RunOutcome.storable`) the form its columns can store."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import RunStatus
from app.models.run import REASON_MAX_CHARS
from app.storable import storable_json, storable_text


class ErrorType:
    """Stable `error_type` values of failed and cancelled runs."""

    LAYER_ERROR = "layer_error"  # a layer's hook or resource context raised
    MODEL_ERROR = "model_error"  # the model provider failed (HTTP error, bad response)
    TOOL_ERROR = "tool_error"  # a tool raised something the model could not recover from
    RUN_LIMIT_EXCEEDED = "run_limit_exceeded"  # model-request budget or wall-clock timeout
    WORKER_LOST = "worker_lost"  # the worker executing the run stopped heartbeating
    WORKER_SHUTDOWN = "worker_shutdown"  # the worker shut down before the run ended
    CANCELLED = "cancelled"  # a cancel request stopped the run
    INVALID_RUN = "invalid_run"  # the stored request could not be executed (e.g. config drift)
    INTERNAL_ERROR = "internal_error"  # a bug in Strata


@dataclass
class RunOutcome:
    """The terminal result of one attempt, as the runner reports it."""

    status: RunStatus
    output: Any = None
    deferred_tool_calls: list[dict[str, Any]] | None = None
    session_snapshot: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    reason: str | None = None
    # The composition a session's cleanup run may replay (not stored on the run itself).
    layer_specs: list[dict[str, Any]] | None = None

    def storable(self) -> RunOutcome:
        """This outcome as its columns can store it: NUL and unpaired surrogates replaced
        (`app.storable`) in what came from outside (a provider's answer: output, deferred
        calls, the history in the snapshot; an error message), and `reason` cut to its column
        (`REASON_MAX_CHARS`; a failure's reason may be an exception's class name). Stored as
        they were, they failed the terminal write every time."""
        return dataclasses.replace(
            self,
            output=storable_json(self.output),
            deferred_tool_calls=storable_json(self.deferred_tool_calls),
            session_snapshot=storable_json(self.session_snapshot),
            error=storable_text(self.error) if self.error is not None else None,
            reason=self.reason[:REASON_MAX_CHARS] if self.reason is not None else None,
        )

    def event_data(self, attempt: int) -> dict[str, Any]:
        """The terminal event's stored data: the fields that apply to this status.

        The resulting snapshot is not repeated here (it is stored once, on the run); readers of
        the event log add it back as `session_snapshot` (`app.runs.service.with_snapshot`).
        """
        data: dict[str, Any] = {"status": self.status.value}
        if self.status is RunStatus.SUCCEEDED:
            data["output"] = self.output
        if self.status is RunStatus.PAUSED:
            calls = self.deferred_tool_calls or []
            data["deferred_tool_calls"] = calls
            data["deferred_tool_call"] = calls[0] if calls else None  # the single-call field
        if self.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            data.update(error=self.error, error_type=self.error_type, reason=self.reason)
        data["usage"] = self.usage
        data["attempt"] = attempt
        return data

    def columns(self, now: datetime) -> dict[str, Any]:
        """The terminal columns of the run row."""
        return {
            "status": self.status,
            "output": self.output,
            "deferred_tool_calls": self.deferred_tool_calls,
            "session_snapshot": self.session_snapshot,
            "usage": self.usage,
            "error": self.error,
            "error_type": self.error_type,
            "reason": self.reason,
            "finished_at": now,
        }


def cancelled_outcome(outcome: RunOutcome | None, message: str | None, reason: str) -> RunOutcome:
    """An attempt's outcome turned into `cancelled`, keeping its snapshot and usage."""
    return RunOutcome(
        status=RunStatus.CANCELLED,
        session_snapshot=outcome.session_snapshot if outcome is not None else None,
        usage=outcome.usage if outcome is not None else None,
        error=message or "the run was cancelled",
        error_type=ErrorType.CANCELLED,
        reason=reason,
    )


TERMINAL_EVENT = {
    RunStatus.SUCCEEDED: "run_succeeded",
    RunStatus.PAUSED: "run_paused",
    RunStatus.FAILED: "run_failed",
    RunStatus.CANCELLED: "run_cancelled",
}
TERMINAL_EVENT_TYPES = frozenset(TERMINAL_EVENT.values())
