"""Structured logging: JSON lines by default, one `configure_logging` call per process.

Log calls pass values as key-value pairs (`log.info("run_claimed", run_id=..., tenant_id=...)`).
Nothing logs request bodies, layer configs or provider settings, so secrets have no path into logs.

Database errors can quote row values: SQLAlchemy appends the bound parameters to its message (the
engines are created with `hide_parameters=True`, see `app.db`), and PostgreSQL's `DETAIL` line
repeats the offending key (`Key (name)=(…) already exists`). `redact_database_errors` runs before
rendering: a logged database exception keeps its traceback and class but loses its message, and
`DETAIL`/`HINT` lines are cut from any string value (for call sites that log `str(exc)`).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings

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


def log_processors(settings: Settings) -> list[structlog.typing.Processor]:
    """The processor chain of `configure_logging` (tests render with the same chain)."""
    renderer: structlog.typing.Processor
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_database_errors,
        structlog.processors.format_exc_info,
        renderer,
    ]


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    structlog.configure(
        processors=log_processors(settings),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
