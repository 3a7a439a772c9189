"""`strata runs …`: post, read, wait for and follow runs of a running server.

The server address and key come from `--url`/`--key` or `STRATA_URL`/`STRATA_API_KEY`. Output is
JSON (one run, or one event per line for `events`), so it pipes into other tools.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

runs_cli = typer.Typer(help="Post, read and follow runs on a running server.", no_args_is_help=True)

UrlOption = Annotated[
    str, typer.Option("--url", envvar="STRATA_URL", help="Server base URL [STRATA_URL].")
]
KeyOption = Annotated[
    str,
    typer.Option(
        "--key", envvar="STRATA_API_KEY", help="API key [STRATA_API_KEY].", show_default=False
    ),
]
DEFAULT_URL = "http://127.0.0.1:8000"


def _client(url: str, key: str) -> Any:
    from app.client import StrataClient

    return StrataClient(url, key, timeout=90.0)


def _print(model: Any) -> None:
    typer.echo(model.model_dump_json(indent=2))


def _fail(error: Exception) -> None:
    from app.client import StrataAPIError

    if isinstance(error, StrataAPIError):
        typer.echo(f"error {error.status_code} {error.code}: {error.message}", err=True)
        if error.details:
            typer.echo(json.dumps(error.details), err=True)
    else:
        typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code=1)


@runs_cli.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="A JSON request body; - reads standard input.")],
    resume_from: Annotated[
        str | None,
        typer.Option(help="Start from the session snapshot this (terminal) run returned."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the run to end and print it.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 120.0,
    idempotency_key: Annotated[str | None, typer.Option(help="Idempotency-Key header.")] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = "",
) -> None:
    """Post a run from a JSON file."""
    from app.client import StrataError

    text = sys.stdin.read() if str(file) == "-" else file.read_text()
    try:
        body: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="FILE") from None
    with _client(url, key) as client:
        try:
            if resume_from is not None:
                previous = client.get_run(resume_from)
                if previous.session_snapshot is None:
                    typer.echo(f"run {resume_from} has no session snapshot to resume", err=True)
                    raise typer.Exit(code=1)
                body["session_snapshot"] = previous.session_snapshot
            run = client.create_run(body, idempotency_key=idempotency_key)
            if wait:
                run = client.wait_run(run.id, timeout_seconds=timeout)
        except StrataError as error:
            _fail(error)
    _print(run)


@runs_cli.command("get")
def get(run_id: str, url: UrlOption = DEFAULT_URL, key: KeyOption = "") -> None:
    """Print a run."""
    from app.client import StrataError

    with _client(url, key) as client:
        try:
            _print(client.get_run(run_id))
        except StrataError as error:
            _fail(error)


@runs_cli.command("cancel")
def cancel(
    run_id: str,
    reason: Annotated[str | None, typer.Option(help="Why; stored with the run.")] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = "",
) -> None:
    """Cancel a run."""
    from app.client import StrataError

    with _client(url, key) as client:
        try:
            _print(client.cancel_run(run_id, reason))
        except StrataError as error:
            _fail(error)


@runs_cli.command("events")
def events(
    run_id: str,
    after: Annotated[int, typer.Option(help="Start after this event seq.")] = 0,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = "",
) -> None:
    """Follow a run's events (server-sent events) until its terminal event; one JSON per line."""
    from app.client import StrataError

    with _client(url, key) as client:
        try:
            for event in client.iter_events(run_id, after=after):
                typer.echo(event.model_dump_json())
        except StrataError as error:
            _fail(error)
