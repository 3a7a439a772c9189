"""`/v1/keys`: a tenant's admins create, list and revoke the tenant's API keys.

A new key's plaintext is in the creation response only; lists show its prefix. Another tenant's
key ids answer 404 like unknown ones. Revocation is immediate (keys are looked up on every
request) and refused for the tenant's last active admin key (409 `last_admin_key`), so a tenant
cannot lock itself out through the API.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import ReadDb, State, Write
from app.api.edge import StrataRoute
from app.api.errors import ErrorResponse
from app.api.roles import Admin
from app.errors import Conflict, NotFound
from app.key_schemas import KeyCreate, KeyCreated, KeyList, KeyRead
from app.keys import (
    LastAdminKey,
    get_tenant_key,
    issue_tenant_key,
    list_tenant_keys,
    revoke_tenant_key,
)

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=StrataRoute)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "`key_not_found`: no such key here."},
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    description="A new key of the caller's tenant. The response is the only place its "
    "plaintext ever appears; only its hash is stored.",
)
async def create_key(body: KeyCreate, write: Write, principal: Admin) -> KeyCreated:
    row, plaintext = await write(
        issue_tenant_key, principal.tenant_id, role=body.role, label=body.label
    )
    return KeyCreated(**KeyRead.from_row(row).model_dump(), key=plaintext)


@router.get("", summary="List the tenant's API keys")
async def list_keys(db: ReadDb, principal: Admin) -> KeyList:
    rows = await list_tenant_keys(db, principal.tenant_id)
    return KeyList(items=[KeyRead.from_row(row) for row in rows])


@router.post(
    "/{key_id}/revoke",
    summary="Revoke an API key",
    description="The key stops authenticating at once in the process that answers, and "
    "within `STRATA_KEY_CACHE_SECONDS` (5 s by default) in every other one (each process "
    "trusts a key it looked up for at most that long); event streams opened with it end within "
    "that time. Idempotent.",
    responses={
        **_NOT_FOUND,
        409: {
            "model": ErrorResponse,
            "description": "`last_admin_key`: the tenant's only active admin key.",
        },
    },
)
async def revoke_key(
    key_id: Annotated[uuid.UUID, Path()], write: Write, principal: Admin, state: State
) -> KeyRead:
    revoked = await write(_revoke, principal.tenant_id, key_id)
    state.keys.forget(key_id)  # at once here; other processes within their cache time
    return revoked


async def _revoke(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> KeyRead:
    row = await get_tenant_key(session, tenant_id, key_id)
    if row is None:
        raise NotFound("no such API key", code="key_not_found")
    try:
        revoked = await revoke_tenant_key(session, tenant_id, row)
    except LastAdminKey:
        raise Conflict(
            "this is the tenant's last active admin key; create another admin key first",
            code="last_admin_key",
        ) from None
    return KeyRead.from_row(revoked)
