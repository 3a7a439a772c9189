"""Liveness: `/healthz` answers as long as the process serves HTTP."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get(
    "/healthz",
    summary="Liveness probe",
    description="Answers 200 while the process serves HTTP. It does not touch the database.",
)
async def healthz() -> Health:
    return Health(status="ok")
