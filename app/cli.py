"""The `strata` command line (also `python -m app`).

strata serve [--no-worker]   HTTP API, with an in-process worker unless --no-worker
strata worker                a worker process only
strata migrate               upgrade the database schema to head
strata workers               the live worker processes and the runs each executes
strata keys create|list|revoke  (roles: admin, runner, reader)
strata retention run         delete old terminal runs and their events now
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

from app.cli_runs import runs_cli
from app.config import Settings, get_settings

cli = typer.Typer(
    name="strata",
    help="Strata agent-backend service.",
    no_args_is_help=True,
    add_completion=False,
)
keys_cli = typer.Typer(help="Manage tenants' API keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
retention_cli = typer.Typer(help="Delete old terminal runs and their events.", no_args_is_help=True)
cli.add_typer(retention_cli, name="retention")
cli.add_typer(runs_cli, name="runs")

T = TypeVar("T")


def _run_db(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    """Run `work(session)` in one committed unit of work against the configured database
    (again, whole, while a running server holds SQLite's write lock: `retry_while_busy`)."""
    from app.db import create_engine, create_session_factory, retry_while_busy, unit_of_work

    async def _main() -> T:
        engine = create_engine(settings.database_url)
        factory = create_session_factory(engine)

        async def attempt() -> T:
            async with unit_of_work(factory) as session:
                return await work(session)

        try:
            return await retry_while_busy(attempt)
        finally:
            await engine.dispose()

    return asyncio.run(_main())


def _prepare_database(settings: Settings) -> None:
    """Migrate (when enabled) and, on an empty database, create the default tenant's key.

    The key goes to stdout (a person copies it); log lines go to stderr.
    """
    from app.migrate import upgrade_to_head

    if settings.auto_migrate:
        upgrade_to_head(settings.database_url)
    if settings.bootstrap_default_tenant:
        _bootstrap(settings)


def _configure_logging(settings: Settings) -> None:
    """First thing a long-running command does, so that everything it writes on stderr
    (imports' warnings, migrations, uvicorn) is in the configured log format."""
    from app.logging import configure_logging

    configure_logging(settings)


def _bootstrap(settings: Settings) -> bool:
    from app.keys import bootstrap_default_tenant

    issued = _run_db(settings, bootstrap_default_tenant)
    if issued is None:
        return False
    typer.echo(
        "\n"
        f"Created tenant '{issued.tenant_name}' with an admin API key (shown only once):\n"
        f"\n    {issued.key}\n\n"
        "Use it as:  Authorization: Bearer <key>\n"
    )
    return True


@cli.command()
def bootstrap() -> None:
    """On an empty database, create the `default` tenant and print its admin key once."""
    if not _bootstrap(get_settings()):
        typer.echo("tenants exist already; nothing to do (use `strata keys create`)", err=True)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [STRATA_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [STRATA_PORT].")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a worker in this process.")
    ] = True,
) -> None:
    """Start the HTTP API; with the default --worker, runs execute in this process too."""
    settings = get_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    _configure_logging(settings)
    import uvicorn

    from app.http_server import http_protocol
    from app.main import create_app

    _prepare_database(settings)
    app = create_app(settings, run_worker=worker)
    config = uvicorn.Config(
        app,
        http=http_protocol(),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )
    _run_server(config, app)


def _run_server(config: Any, app: Any) -> None:
    """Run uvicorn; the first SIGTERM/SIGINT also makes the API refuse new runs (503).

    uvicorn then stops listening, lets open requests finish, and runs the lifespan shutdown,
    which drains the in-process worker (see `app.runs.manager.Worker.stop`).
    """
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            strata = getattr(app.state, "strata", None)
            if strata is not None:
                strata.accepting = False
            super().handle_exit(sig, frame)

    _freeze_startup_objects()
    _Server(config).run()


GC_THRESHOLDS = (10_000, 10, 100)
"""The garbage collector's thresholds in a server process (CPython's default: 700, 10, 10)."""


def _freeze_startup_objects() -> None:
    """Keep the cyclic garbage collector from pausing the event loop for long.

    A full collection walks every tracked object and holds the interpreter meanwhile. The
    modules a server imports (FastAPI, SQLAlchemy, pydantic-ai and the model SDKs) leave some
    200,000 long-lived objects, so they are frozen once (`gc.freeze`) before serving. A run in
    flight holds ~230 tracked objects that live as long as the run (seconds: they reach the
    oldest generation); with CPython's default thresholds a full collection ran every few
    seconds under load and took 100-300 ms with 2,000 runs in flight, 650 ms with 5,000
    (bench/inflight.py: `/healthz` p99 200 ms). Those objects are not cyclic garbage when a run
    ends: reference counting frees them (measured: 0.1 cyclic object left per finished run), so
    full collections find almost nothing. A run also allocates thousands of short-lived
    objects: with CPython's 700 a young collection ran about once per run and cost ~0.1 ms of
    each run's ~2.5 ms (measured with `gc.callbacks` at 8 clients); at 10,000 the collector's
    share fell three- to fivefold, and the young generation holds at most 10,000 objects more.
    A full collection comes after 10,000 x 10 x 100 allocations, about as rarely as with
    (700, 10, 1000) before (every few minutes at the benchmarks' load).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@cli.command("worker")
def worker_command() -> None:
    """Run a worker only: claims queued runs and executes them (stops cleanly on SIGTERM)."""
    settings = get_settings()
    _configure_logging(settings)
    from app.runs.worker_process import run_worker_process

    _prepare_database(settings)
    _freeze_startup_objects()
    asyncio.run(run_worker_process(settings))


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from app.migrate import upgrade_to_head

    settings = get_settings()
    upgrade_to_head(settings.database_url)
    typer.echo("database schema is at head")


class KeyRole(StrEnum):
    """The `--role` choices: `app.models.ApiKeyRole`'s values (a test keeps them equal)."""

    ADMIN = "admin"
    RUNNER = "runner"
    READER = "reader"


@keys_cli.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant name; created when it does not exist.")],
    role: Annotated[
        KeyRole,
        typer.Option(
            help="admin: the tenant's keys and everything a runner may do; runner: runs, "
            "sessions, node runs, agent and binding writes; reader: read only.",
            case_sensitive=False,
        ),
    ] = KeyRole.ADMIN,
    label: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from app.keys import issue_key
    from app.models import ApiKeyRole

    settings = get_settings()
    key_role = ApiKeyRole(role.value)
    issued = _run_db(
        settings, lambda session: issue_key(session, tenant, role=key_role, label=label)
    )
    typer.echo(issued.key)
    typer.echo(f"tenant={issued.tenant_name} key_id={issued.key_id} role={key_role}", err=True)


@cli.command("workers")
def workers_command(
    show_all: Annotated[
        bool, typer.Option("--all", help="Also workers whose heartbeat is stale.")
    ] = False,
) -> None:
    """List the worker processes and the runs each executes now.

    A worker is live while its heartbeat is fresher than STRATA_LEASE_SECONDS; its runs are
    taken over by the others' sweepers once it is not.
    """
    from datetime import timedelta

    from sqlalchemy.ext.asyncio import AsyncSession

    from app.models.base import utcnow
    from app.runs.repository import list_workers

    settings = get_settings()

    async def _list(session: AsyncSession) -> list[str]:
        now = utcnow()
        stale_before = now - timedelta(seconds=settings.lease_seconds)
        lines = []
        for row in await list_workers(session):
            live = row.heartbeat_at >= stale_before
            if not (live or show_all):
                continue
            age = (now - row.heartbeat_at).total_seconds()
            lines.append(
                f"{row.id}  {'live' if live else 'stale'}  runs={row.executing}/"
                f"{row.concurrency}  heartbeat={age:.1f}s ago  "
                f"started={row.started_at.isoformat(timespec='seconds')}  version={row.version}"
            )
        return lines

    lines = _run_db(settings, _list)
    if not lines:
        typer.echo("no live workers" if not show_all else "no workers", err=True)
    for line in lines:
        typer.echo(line)


@keys_cli.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """List keys (prefix, tenant, role, state); never the keys themselves."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.models import ApiKey, Tenant

    async def _list(session: AsyncSession) -> list[str]:
        query = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
        if tenant is not None:
            query = query.where(Tenant.name == tenant)
        rows = (await session.execute(query.order_by(ApiKey.created_at))).all()
        return [
            f"{key.id}  {key.prefix}…  tenant={name}  role={key.role}  "
            f"{'revoked' if key.revoked_at else 'active'}"
            for key, name in rows
        ]

    for line in _run_db(get_settings(), _list):
        typer.echo(line)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key: it stops authenticating at once."""
    from app.keys import revoke_key

    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise typer.BadParameter("not a key id", param_hint="KEY_ID") from None
    if not _run_db(get_settings(), lambda session: revoke_key(session, parsed)):
        typer.echo("no active key with that id", err=True)
        raise typer.Exit(code=1)
    typer.echo("revoked")


@retention_cli.command("run")
def retention_run(
    days: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Delete runs that finished more than this many days ago "
            "[STRATA_RETENTION_DAYS]; 0 deletes nothing.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="Runs per transaction [STRATA_RETENTION_BATCH_SIZE]."),
    ] = None,
) -> None:
    """Run one retention pass now and print what it deleted (JSON).

    Deletes terminal runs (with their events) that finished before the cutoff, except the latest
    snapshot of a session that is not cleaned and a snapshot a queued or running run starts
    from; in batches, each its own transaction. Safe beside running workers and servers.
    """
    from app.db import Database
    from app.notifier import LocalNotifier
    from app.retention import run_retention

    settings = get_settings()
    days = settings.retention_days if days is None else days
    size = settings.retention_batch_size if batch_size is None else batch_size

    async def _main() -> Any:
        db = Database(settings.database_url, LocalNotifier(), pool_size=1)
        try:
            return await run_retention(db, days=days, batch_size=size)
        finally:
            await db.close()

    result = asyncio.run(_main())
    typer.echo(
        json.dumps(
            {
                "runs_deleted": result.runs_deleted,
                "events_deleted": result.events_deleted,
                "finished_before": result.cutoff.isoformat() if result.cutoff else None,
            }
        )
    )
    if result.cutoff is None:
        typer.echo("retention is off (days is 0): nothing deleted", err=True)


def main() -> None:
    cli()
