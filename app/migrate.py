"""Schema migrations, callable from Strata's code: upgrade, downgrade, and revision checks.

The Alembic scripts live in `migrations/` next to the `app/` package (the repository root, or the
image's working directory: the Dockerfile copies `app/`, `migrations/` and `alembic.ini` side by
side). The Alembic config is built here with absolute paths, so these functions work from any
working directory; `alembic.ini` is read when present (for `file_template` and the other authoring
options) but is not required.

**Call the sync functions from sync code only.** `migrations/env.py` drives the async engine with
`asyncio.run`, which cannot run inside a running event loop; from async code, use
`await asyncio.to_thread(upgrade_to_head, url)`. `read_current_revision` is the async variant for
code that already holds an engine (the readiness check).

Each function opens its own connection and commits its own transaction(s).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The directory holding `app/`, `migrations/` and `alembic.ini`."""

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic `Config` for Strata's migrations, targeting `url` when given.

    Without `url`, `migrations/env.py` falls back to Strata's settings (`STRATA_DATABASE_URL`).
    """
    if not MIGRATIONS_DIR.is_dir():
        raise RuntimeError(f"Strata's migrations are not installed at {MIGRATIONS_DIR}")
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.is_file() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # Config options go through ConfigParser interpolation: a literal `%` (an escaped
        # character in a password) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(url: str) -> None:
    """Apply every pending migration to the database at `url`. Idempotent. Sync only."""
    command.upgrade(alembic_config(url), "head")


def downgrade(url: str, revision: str) -> None:
    """Revert the database at `url` to `revision` (`"base"` drops every table). Sync only."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision of the migration scripts (None if there are none)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def read_current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database behind `engine` is at (None when never migrated)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_revision_of)


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None when never migrated). Sync only."""

    async def _read() -> str | None:
        engine = create_engine(url)
        try:
            return await read_current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(_read())
