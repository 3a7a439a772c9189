"""Structured logging: one line per event on stderr, one format per process.

`configure_logging` is called once, first thing, by every `strata` command that runs a server or
a worker. Afterwards every line the process writes on stderr has the same format:

- `json` (the default): one JSON object per line with at least `event`, `level` and
  `timestamp` (ISO 8601, UTC); lines from Python's `logging` (uvicorn, Alembic, SQLAlchemy,
  asyncio, any library) also carry `logger`, and an exception's traceback is in `exception`;
- `console`: the same events, rendered for humans.

Two paths lead to stderr and both end in the same renderer: Strata's own `structlog` loggers
(the fast path, no `logging` machinery per call) and the root `logging` handler, whose
`ProcessorFormatter` runs foreign records through the same processors. Values bound with
`structlog.contextvars` (`request_id`, `tenant_id`, `run_id`; see `app.api.request_context`)
appear on lines of both paths.

Log calls pass values as key-value pairs (`log.info("run_claimed", run_id=..., tenant_id=...)`).
Nothing logs headers, request bodies, query strings, layer configs or provider settings, so
secrets have no path into logs; `httpx2`/`httpcore2` are kept at WARNING because their INFO and
DEBUG lines carry full outgoing URLs.

Database errors can quote row values: SQLAlchemy appends the bound parameters to its message (the
engines are created with `hide_parameters=True`, see `app.db`), and PostgreSQL's `DETAIL` line
repeats the offending key (`Key (name)=(…) already exists`). `redact_database_errors` runs before
rendering, on both paths: a logged database exception keeps its traceback and class but loses its
message, and `DETAIL`/`HINT` lines are cut from any string value (for call sites that log
`str(exc)`).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
import threading
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from structlog.stdlib import ProcessorFormatter
from structlog.typing import Processor

from app.config import Settings

_QUIET_LOGGERS = ("httpx2", "httpcore2")
"""Libraries whose INFO/DEBUG lines would log outgoing URLs (a query string may hold a key)."""

_DRIVER_DETAIL = re.compile(r"\n(?:DETAIL|HINT|CONTEXT): [^\n]*")


def is_database_error(exc: BaseException) -> bool:
    """True for SQLAlchemy and driver errors, whose messages may carry row values."""
    return isinstance(exc, SQLAlchemyError | sqlite3.Error) or type(exc).__module__.startswith(
        "asyncpg"
    )


def describe_database_error(exc: BaseException) -> str:
    """`Class (sqlstate …)`: what a log line may say about a database error."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(exc, "sqlstate", None)
    constraint = getattr(orig, "constraint_name", None) or getattr(exc, "constraint_name", None)
    parts = [f"sqlstate={sqlstate}"] if sqlstate else []
    if constraint:
        parts.append(f"constraint={constraint}")
    suffix = f" ({', '.join(parts)})" if parts else ""
    return f"{type(exc).__module__}.{type(exc).__qualname__}{suffix}: [message hidden]"


def redact_database_errors(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: no database error message reaches a log line (module docstring)."""
    exc_info = event_dict.get("exc_info")
    exc: BaseException | None = None
    if isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    elif exc_info:
        exc = sys.exc_info()[1]
    if exc is not None and _chain_has_database_error(exc):
        del event_dict["exc_info"]
        event_dict["exception"] = _redacted_traceback(exc)
    for key, value in event_dict.items():
        if isinstance(value, str) and "\n" in value:
            event_dict[key] = _DRIVER_DETAIL.sub("", value)
    return event_dict


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _chain_has_database_error(exc: BaseException) -> bool:
    return any(is_database_error(item) for item in _chain(exc))


def _redacted_traceback(exc: BaseException) -> str:
    blocks = []
    for item in reversed(_chain(exc)):
        message = (
            describe_database_error(item)
            if is_database_error(item)
            else "".join(traceback.format_exception_only(type(item), item)).rstrip()
        )
        frames = "".join(traceback.format_tb(item.__traceback__))
        blocks.append(f"Traceback (most recent call last):\n{frames}{message}")
    return "\n\nDuring handling of the above, another exception occurred:\n\n".join(blocks)


def _chains(settings: Settings) -> tuple[list[Processor], list[Processor], Processor]:
    """(context processors, finishing processors, renderer) for `settings.log_format`."""
    context: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    finish: list[Processor] = [redact_database_errors]
    renderer: Processor
    if settings.log_format == "json":
        # A traceback becomes one string field, so it stays on the event's one line.
        finish.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)  # renders tracebacks itself
    return context, finish, renderer


def log_processors(settings: Settings) -> list[Processor]:
    """The processor chain of Strata's own loggers (tests render with the same chain)."""
    context, finish, renderer = _chains(settings)
    return [*context, *finish, renderer]


def configure_logging(settings: Settings) -> None:
    """Route every log line of this process to stderr in `settings.log_format`.

    Replaces the root `logging` handlers, captures `warnings`, and logs uncaught exceptions
    (main thread and other threads) as one event instead of a bare traceback.
    """
    level = getattr(logging, settings.log_level.upper())
    context, finish, renderer = _chains(settings)
    structlog.configure(
        processors=[*context, *finish, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # WriteLogger writes line and newline in one call, so lines of both paths never mix.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ProcessorFormatter(
            foreign_pre_chain=[*context, structlog.stdlib.add_logger_name, *finish],
            processors=[ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


_crash_log = structlog.get_logger("strata")


def _log_uncaught(
    _type: type[BaseException], exc: BaseException, _traceback: TracebackType | None
) -> None:
    _crash_log.critical("uncaught_exception", exc_info=exc)


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    _crash_log.critical(
        "uncaught_exception",
        thread=args.thread.name if args.thread else None,
        exc_info=args.exc_value if args.exc_value is not None else True,
    )
