"""Test-only routes that fail on purpose, added to an app the way tests add layer types.

`GET /test/boom` raises an exception no handler knows; `POST /test/duplicate-tenant` inserts the
tenant named in the body twice, so its second statement fails with an integrity error whose
message would quote the name.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import Write
from app.api.edge import StrataRoute
from app.api.roles import Public
from app.models import Tenant

router = APIRouter(prefix="/test", route_class=StrataRoute)
# public: these routes test error handling, not authentication


class TenantName(BaseModel):
    name: str


@router.get("/boom", dependencies=[Public])
async def boom() -> None:
    raise RuntimeError("a bug in a route")


@router.post("/duplicate-tenant", dependencies=[Public])
async def duplicate_tenant(body: TenantName, write: Write) -> None:
    await write(_insert_twice, body.name)


async def _insert_twice(session: AsyncSession, name: str) -> None:
    await session.execute(insert(Tenant).values(name=name))
    await session.execute(insert(Tenant).values(name=name))


FAILING_ROUTERS = [router]
