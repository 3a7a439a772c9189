"""Operations endpoints: liveness, readiness (no key needed) and Prometheus metrics.

`/metrics` shows database-wide counts across tenants, so it is for the operator only: it answers
when `STRATA_METRICS_TOKEN` is set and the request carries `Authorization: Bearer <that token>`
(401 `invalid_metrics_token` otherwise), and 404 when no token is configured.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from app.api.deps import State
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse, error_response
from app.api.roles import Public
from app.migrate import read_current_revision

_operator_bearer = HTTPBearer(
    auto_error=False, scheme_name="MetricsToken", description="`STRATA_METRICS_TOKEN`."
)

router = APIRouter(
    tags=["operations"],
    route_class=StrataRoute,
    responses={
        422: {"model": ErrorResponse, "description": "These routes take no query parameters."}
    },
)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    schema_revision: str | None


@router.get(
    "/healthz",
    dependencies=[Public],
    summary="Liveness probe",
    description="Answers 200 while the process serves HTTP. It does not touch the database.",
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    dependencies=[Public],
    summary="Readiness probe",
    description=(
        "200 when the database answers and its schema is at the newest migration; 503 with "
        "code `database_unavailable` or `schema_outdated` otherwise."
    ),
    responses={503: {"model": ErrorResponse}},
    response_model=Readiness,
)
async def readyz(state: State) -> Response:
    try:
        async with state.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        revision = await read_current_revision(state.db.engine)
    except Exception:
        return error_response(
            503,
            "database_unavailable",
            "the database cannot be reached",
            headers={"Retry-After": "1"},
        )
    if revision != state.schema_head:
        return error_response(
            503,
            "schema_outdated",
            f"the database schema is at {revision}, this server needs {state.schema_head}; "
            "run `strata migrate`",
        )
    return JSONResponse(Readiness(status="ready", schema_revision=revision).model_dump())


@router.get(
    "/metrics",
    dependencies=[Public],
    summary="Prometheus metrics",
    response_class=Response,
    description="Prometheus text format, for the operator: needs "
    "`Authorization: Bearer <STRATA_METRICS_TOKEN>`. Counts cover every tenant.",
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        401: {"model": ErrorResponse, "description": "`invalid_metrics_token`."},
        404: {"model": ErrorResponse, "description": "`not_found`: no metrics token is set."},
    },
)
async def metrics(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_operator_bearer)],
) -> Response:
    token = state.settings.metrics_token
    if token is None or not token.get_secret_value():
        return error_response(404, "not_found", "metrics are off: set STRATA_METRICS_TOKEN")
    presented = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(presented.encode(), token.get_secret_value().encode()):
        return error_response(
            401,
            "invalid_metrics_token",
            "send Authorization: Bearer <STRATA_METRICS_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    async with state.db.reading() as session:
        body = await state.metrics.render(session, lease_seconds=state.settings.lease_seconds)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
