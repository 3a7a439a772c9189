"""The runner: executes one attempt of a run through the compositor and one agent turn.

Steps: rebuild the compositor from the stored composition with this server's registry; enter it
with the server-side layer configs and the incoming snapshot; apply `on_exit` (a cleanup run
exits everything with DELETE); for an agent run, run one agent turn (`app.runs.agent_loop`) with
the aggregated prompts as run instructions (never saved into history), the user prompt
fragments, the layers' tools, the output layer's type and the history layer's messages; store
the new history into the history layer's runtime state; exit every layer; report one
`RunOutcome`.

Stopping. A cancel, a shutdown, a lost lease or the run's timeout interrupts the agent turn where
it waits (the turn runs in a task of its own, which is cancelled), never a layer hook. How the
layers then exit depends on why:

- cancel or timeout: as `on_exit` says; the run ends `cancelled` / `failed`;
- shutdown: every layer exits with SUSPEND, whatever `on_exit` says: the run is handed back
  (queued again or failed `worker_shutdown`) and its session must stay resumable;
- lost lease: no exit hook runs at all (`abandon_on_exit`: only resource contexts close) and the
  worker writes nothing: another attempt may own the run and its session's layers now. Before
  any delete hook runs, the runner asks the database whether the attempt still holds the run
  (`EventSink.holds_lease`), so a worker that was paused past its lease never deletes what a
  newer attempt uses.

Snapshot rule: `succeeded`/`paused` always carry the new snapshot. `failed`/`cancelled` carry it
only when every layer entered and exited cleanly; otherwise the caller keeps its previous one.
Failures inside the agent (model, tools, limits, cancellation) are caught inside the compositor
block, so the layers still exit normally and the snapshot stays valid; an error escaping the
block came from a layer's own hooks.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import structlog
from pydantic_ai import (
    DeferredToolRequests,
    DeferredToolResults,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolDenied,
    UsageLimitExceeded,
)
from pydantic_ai.exceptions import ModelHTTPError, UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelRequest
from pydantic_core import to_jsonable_python

from app.compositor import CompositorError, CompositorRun, ExitIntent
from app.config import Settings
from app.errors import ValidationFailed
from app.layers import LayerRegistry, ToolSetupError
from app.layers.ask_human import AskHumanLayer
from app.layers.base import HistoryLayer, ModelLayer, OutputLayer
from app.layers.execution_context import with_run_id
from app.layers.llm import UnknownModelProvider
from app.models import RunPurpose, RunStatus
from app.runs.agent_loop import run_turn
from app.runs.manager import CancelSignal, EventSink, RunJob
from app.runs.outcome import ErrorType, RunOutcome
from app.runs.schemas import ExitIntentName, OnExit, RunComposition
from app.runs.tool_events import tool_call_data, tool_result_data
from app.runs.validation import build_compositor, replayable_specs, server_configs
from app.storable import storable_text

log = structlog.get_logger("strata.runner")

_RETIRING = (RunStatus.FAILED, RunStatus.CANCELLED)


class AgentRunner:
    """Executes run attempts; one instance per worker."""

    def __init__(self, registry: LayerRegistry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings

    async def execute(self, job: RunJob, sink: EventSink, cancel: CancelSignal) -> RunOutcome:
        inputs = job.inputs
        try:
            composition = RunComposition.model_validate(job.composition)
            compositor = build_compositor(composition, self.registry)
            configs = with_run_id(
                [(spec.name, spec.type) for spec in composition.layers],
                server_configs(composition, tenant_id=str(job.tenant_id)),
                str(job.run_id),
            )
            run = compositor.create_run(configs, job.session_snapshot_in)
        except (ValidationFailed, CompositorError) as error:
            return RunOutcome(
                status=RunStatus.FAILED,
                error=f"the stored request cannot run on this server: {error}",
                error_type=ErrorType.INVALID_RUN,
                reason=getattr(error, "code", "invalid_run"),
            )
        on_exit = OnExit.model_validate(inputs.get("on_exit") or {})
        body: RunOutcome | None = None
        try:
            async with run:
                _apply_on_exit(run, on_exit, cleanup=job.purpose is RunPurpose.CLEANUP)
                if job.purpose is RunPurpose.CLEANUP:
                    body = RunOutcome(status=RunStatus.SUCCEEDED, output=None)
                else:
                    body = await self._agent_turn(run, job, sink, cancel)
                if job.session_id is not None and body.status in _RETIRING:
                    # the session is retired on failure: release what its layers hold
                    run.delete_on_exit()
                if cancel.reason == "shutdown":
                    run.suspend_on_exit()  # handed back: the session must stay resumable
                elif cancel.reason == "lease_lost" or (
                    _deletes(run) and not await sink.holds_lease()
                ):
                    # Another attempt may own the session's layers now: no exit hook at all,
                    # only the process-local resource contexts close.
                    cancel.set("lease_lost")
                    run.abandon_on_exit()
        except ToolSetupError as error:  # a tool layer could not provide its tools
            log.warning("tool_setup_failed", run_id=str(job.run_id), reason=error.reason)
            return RunOutcome(
                status=RunStatus.FAILED,
                usage=body.usage if body else None,
                error=str(error),
                error_type=ErrorType.TOOL_ERROR,
                reason=error.reason,
            )
        except Exception as error:  # a layer hook or resource context failed
            layer = getattr(error, "layer", None)
            log.warning(
                "layer_failed",
                run_id=str(job.run_id),
                layer=layer,
                error_class=type(error).__name__,
            )
            return RunOutcome(
                status=RunStatus.FAILED,
                usage=body.usage if body else None,
                error=_describe(error),
                error_type=ErrorType.LAYER_ERROR,
                reason="layer_failed",
            )
        snapshot = run.session_snapshot
        body.session_snapshot = snapshot.model_dump(mode="json") if snapshot is not None else None
        if job.session_id is not None:
            body.layer_specs = replayable_specs(composition, self.registry)
        return body

    async def _agent_turn(
        self, run: CompositorRun, job: RunJob, sink: EventSink, cancel: CancelSignal
    ) -> RunOutcome:
        inputs = job.inputs
        layers = run.layers
        model_layer = next(layer for layer in layers.values() if isinstance(layer, ModelLayer))
        history = next(
            (layer for layer in layers.values() if isinstance(layer, HistoryLayer)), None
        )
        output = next((layer for layer in layers.values() if isinstance(layer, OutputLayer)), None)
        defers = any(isinstance(layer, AskHumanLayer) for layer in layers.values())

        output_type: Any = output.output_type() if output is not None else str
        if defers or run.tools:  # any tool may defer (ask a caller, need an approval)
            output_type = [output_type, DeferredToolRequests]
        instructions = "\n\n".join(str(prompt) for prompt in run.prompts) or None
        user_prompt = "\n\n".join(str(prompt) for prompt in run.user_prompts) or None
        history_in: list[ModelMessage] = list(history.runtime_state.messages) if history else []
        deferred = _deferred_results(inputs.get("deferred_tool_results"))
        if user_prompt is None and deferred is None and not history_in:
            return RunOutcome(
                status=RunStatus.FAILED,
                error="the composition produced no user prompt (add one, e.g. plain.prompt "
                "config `user`)",
                error_type=ErrorType.INVALID_RUN,
                reason="empty_user_prompt",
            )
        try:
            model = model_layer.build_model()
        except UnknownModelProvider as error:
            return RunOutcome(
                status=RunStatus.FAILED,
                error=str(error),
                error_type=ErrorType.INVALID_RUN,
                reason="unknown_model_provider",
            )

        async def on_event(event: Any) -> None:
            await _forward_event(event, sink, result_chars)

        result_chars = self.settings.event_tool_result_max_chars
        timeout = float(inputs.get("timeout_seconds") or self.settings.run_max_timeout_seconds)
        turn = run_turn(
            model,
            user_prompt=user_prompt,
            instructions=instructions,
            history=history_in,
            tools=list(run.tools),
            output_type=output_type,
            output_validator=output.validate_output if output is not None else None,
            deferred=deferred,
            request_limit=int(inputs.get("max_model_requests") or 1),
            on_event=on_event,
        )
        try:
            result = await _stoppable(turn, cancel, timeout)
        except _Stopped as stopped:
            return stopped.outcome
        except UsageLimitExceeded as error:
            return _failed(error, ErrorType.RUN_LIMIT_EXCEEDED, "model_request_budget")
        except ModelHTTPError as error:
            return _failed(
                error, ErrorType.MODEL_ERROR, f"http_{error.status_code}", _provider_message(error)
            )
        except UnexpectedModelBehavior as error:
            return _failed(error, ErrorType.MODEL_ERROR, "unexpected_model_behavior")
        except UnknownModelProvider as error:
            return _failed(error, ErrorType.INVALID_RUN, "unknown_model_provider")
        except Exception as error:
            log.warning("agent_failed", run_id=str(job.run_id), error_class=type(error).__name__)
            return _failed(
                error,
                ErrorType.TOOL_ERROR if _from_tool(error) else ErrorType.MODEL_ERROR,
                type(error).__name__,
            )

        usage = _usage(result.usage)
        if history is not None:
            history.runtime_state.messages = _strip_instructions(result.messages)
        if isinstance(result.output, DeferredToolRequests):
            requests = result.output
            pending = [("call", call) for call in requests.calls]
            pending += [("approval", call) for call in requests.approvals]
            return RunOutcome(
                status=RunStatus.PAUSED,
                deferred_tool_calls=[
                    {
                        "tool_call_id": call.tool_call_id,
                        "tool_name": call.tool_name,
                        "kind": kind,
                        "args": call.args_as_dict(),
                        "metadata": _jsonable(requests.metadata.get(call.tool_call_id, {})),
                    }
                    for kind, call in pending
                ],
                usage=usage,
            )
        return RunOutcome(status=RunStatus.SUCCEEDED, output=_jsonable(result.output), usage=usage)


class _Stopped(Exception):
    """The agent turn was interrupted: by the run's cancel signal or its timeout."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


async def _stoppable(coroutine: Any, cancel: CancelSignal, timeout: float) -> Any:
    """Await `coroutine` in a task of its own that the cancel signal or the timeout cancels;
    `_Stopped` with the matching outcome when that happened. A cancellation of the caller's
    own task propagates unchanged (and cancels the turn with it)."""
    turn = asyncio.ensure_future(coroutine)
    why: list[str] = []

    def stop(reason: str) -> None:
        if not why:
            why.append(reason)
            turn.cancel()

    handle = asyncio.get_running_loop().call_later(timeout, stop, "timeout")
    remove = cancel.on_set(lambda: stop("cancel"))
    try:
        return await turn
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not why or (current is not None and current.cancelling()):
            raise
    finally:
        handle.cancel()
        remove()
    if why[0] == "timeout":
        raise _Stopped(
            RunOutcome(
                status=RunStatus.FAILED,
                error=f"the run exceeded its timeout of {timeout:g} seconds",
                error_type=ErrorType.RUN_LIMIT_EXCEEDED,
                reason="timeout",
            )
        )
    raise _Stopped(
        RunOutcome(
            status=RunStatus.CANCELLED,
            error=cancel.message or "the run was cancelled",
            error_type=ErrorType.CANCELLED,
            reason=cancel.reason or "cancel_requested",
        )
    )


def _deferred_results(raw: dict[str, Any] | None) -> DeferredToolResults | None:
    """The stored `deferred_tool_results` as pydantic-ai takes them."""
    if not raw:
        return None
    approvals: dict[str, bool | ToolDenied] = {}
    for call_id, answer in (raw.get("approvals") or {}).items():
        if isinstance(answer, dict):
            approved = bool(answer.get("approved"))
            message = answer.get("message")
            approvals[call_id] = True if approved else ToolDenied(message) if message else False
        else:
            approvals[call_id] = bool(answer)
    return DeferredToolResults(
        calls=dict(raw.get("calls") or {}),
        approvals=dict(approvals),
        metadata=dict(raw.get("metadata") or {}),
    )


def _deletes(run: CompositorRun) -> bool:
    """True when some layer would run its delete hook on exit."""
    return any(run.exit_intent(name) is ExitIntent.DELETE for name in run.names)


def _apply_on_exit(run: CompositorRun, on_exit: OnExit, *, cleanup: bool) -> None:
    if cleanup:
        run.delete_on_exit()
        return
    if on_exit.default is ExitIntentName.SUSPEND:
        run.suspend_on_exit()
    else:
        run.delete_on_exit()
    for name, intent in on_exit.layers.items():
        if intent is ExitIntentName.SUSPEND:
            run.suspend_layer_on_exit(name)
        else:
            run.delete_layer_on_exit(name)


async def _forward_event(event: Any, sink: EventSink, result_chars: int) -> None:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        await sink.text_delta(storable_text(event.part.content))
    elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        await sink.text_delta(storable_text(event.delta.content_delta))
    elif isinstance(event, FunctionToolCallEvent):
        await sink.emit("tool_call", tool_call_data(event.part))
    elif isinstance(event, FunctionToolResultEvent):
        await sink.emit("tool_result", tool_result_data(event.part, result_chars))


def _strip_instructions(messages: list[ModelMessage]) -> list[ModelMessage]:
    """Run instructions come from the prompt layers each run; they never enter the history."""
    return [
        dataclasses.replace(message, instructions=None)
        if isinstance(message, ModelRequest) and message.instructions is not None
        else message
        for message in messages
    ]


def _usage(usage: Any) -> dict[str, Any]:
    input_tokens = int(getattr(usage, "input_tokens", 0) or 0)
    output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
    return {
        "requests": int(getattr(usage, "requests", 0) or 0),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "tool_calls": int(getattr(usage, "tool_calls", 0) or 0),
    }


def _failed(
    error: BaseException, error_type: str, reason: str, message: str | None = None
) -> RunOutcome:
    return RunOutcome(
        status=RunStatus.FAILED,
        error=message or _describe(error),
        error_type=error_type,
        reason=reason,
    )


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _provider_message(error: ModelHTTPError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return f"the model provider answered HTTP {error.status_code}"


def _from_tool(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if "pydantic_ai/tools" in filename or "tool_manager" in filename:
            return True
        tb = tb.tb_next
    return False


def _jsonable(value: Any) -> Any:
    """JSON-compatible copy of `value` (pydantic/dataclass values become plain data)."""
    return to_jsonable_python(value)
