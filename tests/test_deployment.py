"""The deployment files say what the README says: compose runs PostgreSQL, a one-shot
migration, the API without a worker and two workers, each with a health check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_postgres_migrate_api_and_two_workers() -> None:
    services = _compose()["services"]

    assert set(services) == {"postgres", "migrate", "api", "worker-1", "worker-2"}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "strata migrate" in " ".join(services["migrate"]["entrypoint"])
    assert services["api"]["command"][:2] == ["serve", "--no-worker"]
    for name in ("api", "worker-1", "worker-2"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"] == ["worker"]


def test_every_long_running_service_has_a_health_check() -> None:
    services = _compose()["services"]

    for name in ("postgres", "api", "worker-1", "worker-2"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    worker_env = services["worker-1"]["environment"]
    assert worker_env["STRATA_WORKER_HEALTH_FILE"] in services["worker-1"]["healthcheck"]["test"][1]


def test_every_strata_service_uses_the_same_database_and_no_auto_migration() -> None:
    services = _compose()["services"]
    urls = set()
    for name in ("migrate", "api", "worker-1", "worker-2"):
        env = services[name]["environment"]
        urls.add(env["STRATA_DATABASE_URL"])
        assert env["STRATA_AUTO_MIGRATE"] == "false"
    assert len(urls) == 1
    assert urls.pop().startswith("postgresql+asyncpg://")


def test_the_dockerfile_installs_the_package_and_starts_the_service() -> None:
    text = (ROOT / "Dockerfile").read_text()

    for needed in ("COPY app ./app", "COPY migrations ./migrations", "alembic.ini", "pip install"):
        assert needed in text
    assert 'ENTRYPOINT ["strata"]' in text
    assert 'CMD ["serve"]' in text
    assert "HEALTHCHECK" in text


def test_the_readme_documents_every_setting() -> None:
    from app.config import Settings

    readme = (ROOT / "README.md").read_text()
    missing = [
        f"STRATA_{name.upper()}"
        for name in Settings.model_fields
        if f"`STRATA_{name.upper()}`" not in readme
    ]
    assert missing == []
