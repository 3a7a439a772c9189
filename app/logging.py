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
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

import structlog
from structlog.stdlib import ProcessorFormatter
from structlog.typing import Processor

from app.config import Settings

_QUIET_LOGGERS = ("httpx2", "httpcore2")
"""Libraries whose INFO/DEBUG lines would log outgoing URLs (a query string may hold a key)."""


def configure_logging(settings: Settings) -> None:
    """Route every log line of this process to stderr in `settings.log_format`.

    Replaces the root `logging` handlers, captures `warnings`, and logs uncaught exceptions
    (main thread and other threads) as one event instead of a bare traceback.
    """
    level = getattr(logging, settings.log_level.upper())
    context: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    finish: list[Processor] = []
    renderer: Processor
    if settings.log_format == "json":
        # A traceback becomes one string field, so it stays on the event's one line.
        finish.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)  # renders tracebacks itself

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
