"""What executing a run produces, independent of how it is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.models import RunStatus


class ErrorType:
    """Stable `error_type` values of failed and cancelled runs."""

    LAYER_ERROR = "layer_error"  # a layer's hook or resource context raised
    MODEL_ERROR = "model_error"  # the model provider failed (HTTP error, bad response)
    TOOL_ERROR = "tool_error"  # a tool raised something the model could not recover from
    RUN_LIMIT_EXCEEDED = "run_limit_exceeded"  # model-request budget or wall-clock timeout
    WORKER_LOST = "worker_lost"  # the worker executing the run stopped heartbeating
    CANCELLED = "cancelled"  # a cancel request (or shutdown) stopped the run
    INVALID_RUN = "invalid_run"  # the stored request could not be executed (e.g. config drift)
    INTERNAL_ERROR = "internal_error"  # a bug in Strata


@dataclass
class RunOutcome:
    """The terminal result of one attempt, as the runner reports it."""

    status: RunStatus
    output: Any = None
    deferred_tool_call: dict[str, Any] | None = None
    session_snapshot: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    reason: str | None = None

    def payload(self) -> dict[str, Any]:
        """The terminal event's data: the fields that apply to this status."""
        data: dict[str, Any] = {"status": self.status.value}
        if self.status is RunStatus.SUCCEEDED:
            data["output"] = self.output
        if self.status is RunStatus.PAUSED:
            data["deferred_tool_call"] = self.deferred_tool_call
        if self.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            data.update(error=self.error, error_type=self.error_type, reason=self.reason)
        data["session_snapshot"] = self.session_snapshot
        data["usage"] = self.usage
        return data


TERMINAL_EVENT = {
    RunStatus.SUCCEEDED: "run_succeeded",
    RunStatus.PAUSED: "run_paused",
    RunStatus.FAILED: "run_failed",
    RunStatus.CANCELLED: "run_cancelled",
}
