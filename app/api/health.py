"""Operations endpoints: liveness, readiness and Prometheus metrics (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from app.api.deps import State
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse, error_response
from app.migrate import read_current_revision

router = APIRouter(tags=["operations"], route_class=StrataRoute)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    schema_revision: str | None


@router.get(
    "/healthz",
    summary="Liveness probe",
    description="Answers 200 while the process serves HTTP. It does not touch the database.",
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
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
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        revision = await read_current_revision(state.engine)
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
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(state: State) -> Response:
    async with state.read_session_factory() as session:
        body = await state.metrics.render(session)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
