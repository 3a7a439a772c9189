"""Tenants and API keys.

A key is shown once, when it is created; the database keeps only its SHA-256 hash and a short
prefix for display. A process trusts a key it looked up for a few seconds (`KeyCache`,
`STRATA_KEY_CACHE_SECONDS`), so a revoked key stops authenticating everywhere within that time
(at once in the process that revoked it). Keys are long random tokens, so a plain (unsalted) hash
is enough to make a leaked table useless, and it lets authentication find the key with one
indexed lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, ApiKeyRole, Tenant

KEY_PREFIX = "sk-strata-"
_PREFIX_LEN = len(KEY_PREFIX) + 6
DEFAULT_TENANT = "default"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant every query is scoped to, and the key's role."""

    tenant_id: uuid.UUID
    tenant_name: str
    api_key_id: uuid.UUID
    role: ApiKeyRole


@dataclass(frozen=True)
class IssuedKey:
    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key: str  # the plaintext: show it once, never store or log it
    prefix: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def get_or_create_tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        await session.flush()
    return tenant


async def issue_key(
    session: AsyncSession,
    tenant_name: str,
    *,
    role: ApiKeyRole = ApiKeyRole.ADMIN,
    label: str | None = None,
) -> IssuedKey:
    """Create the tenant when it does not exist, then a new key for it."""
    tenant = await get_or_create_tenant(session, tenant_name)
    key = _new_key()
    row = ApiKey(
        tenant_id=tenant.id,
        name=label,
        key_hash=hash_key(key),
        prefix=key[:_PREFIX_LEN],
        role=role,
    )
    session.add(row)
    await session.flush()
    return IssuedKey(
        tenant_id=tenant.id, tenant_name=tenant.name, key_id=row.id, key=key, prefix=row.prefix
    )


async def bootstrap_default_tenant(session: AsyncSession) -> IssuedKey | None:
    """On an empty database, create the `default` tenant with one admin key; else do nothing."""
    if await session.scalar(select(func.count()).select_from(Tenant)):
        return None
    return await issue_key(session, DEFAULT_TENANT, label="bootstrap")


async def authenticate(
    session: AsyncSession, key: str, *, key_hash: str | None = None
) -> tuple[Principal, bool] | None:
    """Resolve a presented key; None when it is unknown or revoked.

    Read-only. The boolean says whether `last_used_at` is stale (older than a minute) and worth
    refreshing with `touch_key` in a write transaction.
    """
    row = await session.execute(
        select(ApiKey.id, ApiKey.tenant_id, ApiKey.role, ApiKey.last_used_at, Tenant.name)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == (key_hash or hash_key(key)), ApiKey.revoked_at.is_(None))
    )
    found = row.first()
    if found is None:
        return None
    now = datetime.now(UTC)
    stale = found.last_used_at is None or now - found.last_used_at > _LAST_USED_RESOLUTION
    principal = Principal(
        tenant_id=found.tenant_id,
        tenant_name=found.name,
        api_key_id=found.id,
        role=ApiKeyRole(found.role),
    )
    return principal, stale


async def touch_key(session: AsyncSession, key_id: uuid.UUID) -> None:
    """Record that a key was used now."""
    await session.execute(
        update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=datetime.now(UTC))
    )


async def list_tenant_keys(session: AsyncSession, tenant_id: uuid.UUID) -> list[ApiKey]:
    """A tenant's keys, newest first (revoked ones included)."""
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.tenant_id == tenant_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    return list(rows)


async def get_tenant_key(
    session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKey | None:
    key: ApiKey | None = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
    )
    return key


async def issue_tenant_key(
    session: AsyncSession, tenant_id: uuid.UUID, *, role: ApiKeyRole, label: str | None
) -> tuple[ApiKey, str]:
    """A new key of an existing tenant: the row and the plaintext (show it once)."""
    key = _new_key()
    row = ApiKey(
        tenant_id=tenant_id, name=label, key_hash=hash_key(key), prefix=key[:_PREFIX_LEN], role=role
    )
    session.add(row)
    await session.flush()
    return row, key


class LastAdminKey(Exception):
    """Revoking this key would leave its tenant without an active admin key."""


async def revoke_tenant_key(session: AsyncSession, tenant_id: uuid.UUID, key: ApiKey) -> ApiKey:
    """Revoke one of a tenant's keys (idempotent); never its last active admin key.

    The tenant row is locked first, so two admins revoking each other's keys at once cannot
    both succeed and leave the tenant without an admin.

    Raises:
        LastAdminKey: `key` is the tenant's only active admin key.
    """
    await session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    if key.revoked_at is not None:
        return key
    if key.role is ApiKeyRole.ADMIN:
        admins = await session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(
                ApiKey.tenant_id == tenant_id,
                ApiKey.role == ApiKeyRole.ADMIN,
                ApiKey.revoked_at.is_(None),
            )
        )
        if (admins or 0) <= 1:
            raise LastAdminKey
    key.revoked_at = datetime.now(UTC)
    await session.flush()
    return key


async def revoke_key(session: AsyncSession, key_id: uuid.UUID) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(getattr(result, "rowcount", 0))


KEY_CACHE_SECONDS = 5.0
"""How long a resolved key is trusted without asking the database again (the default of
`STRATA_KEY_CACHE_SECONDS`): a revoked key stops working within this time in every process."""

Lookup = Callable[[], Awaitable["tuple[Principal, bool] | None"]]


class KeyCache:
    """Resolved API keys, per process, for `ttl_seconds` (by the key's hash).

    Only successful lookups are kept; an unknown key is looked up every time. Concurrent
    lookups of one key share a single database read (`lookup`): a burst of requests with a key
    the cache does not hold yet (a cold start, or every `ttl_seconds`) would otherwise read it
    once per request and, finding `last_used_at` stale, queue one `UPDATE` of the same row per
    request — a convoy on that row's lock, each waiter holding a pooled connection (issue 13.6:
    500 streams and 500 long-polls opened at once starved the pool that way).
    """

    def __init__(self, ttl_seconds: float = KEY_CACHE_SECONDS, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lookups: dict[str, asyncio.Task[tuple[Principal, bool] | None]] = {}

    def get(self, key_hash: str, max_age: float | None = None) -> Principal | None:
        """The cached principal, if it was looked up at most `max_age` (default: the cache
        time) seconds ago."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        age = time.monotonic() - entry[0]
        if age > self.ttl_seconds:
            del self._entries[key_hash]
            return None
        if max_age is not None and age > max_age:
            return None
        return entry[1]

    async def lookup(self, key_hash: str, fetch: Lookup) -> tuple[Principal, bool] | None:
        """Look the key up with `fetch()` (the database), sharing one read among concurrent
        callers, and cache what it found. The second item ("`last_used_at` is stale, refresh
        it") is True for one caller only, so one burst records one use.

        The read runs in a task of its own: a caller that goes away (its client disconnected)
        does not cancel the others' read.
        """
        task = self._lookups.get(key_hash)
        first = task is None
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._lookups[key_hash] = task
            task.add_done_callback(lambda done: self._looked_up(key_hash, done))
        found = await asyncio.shield(task)
        if found is None:
            return None
        return found[0], found[1] and first

    def _looked_up(self, key_hash: str, task: asyncio.Task[tuple[Principal, bool] | None]) -> None:
        if self._lookups.get(key_hash) is task:
            del self._lookups[key_hash]
        if task.cancelled() or task.exception() is not None:
            return  # every caller that still waits gets the error; nothing to cache
        found = task.result()
        if found is not None:
            self.put(key_hash, found[0])
        else:
            self._entries.pop(key_hash, None)  # revoked since it was cached: stop trusting it

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop a key (revoked in this process: it stops working here at once)."""
        for key_hash, (_, principal) in list(self._entries.items()):
            if principal.api_key_id == key_id:
                del self._entries[key_hash]

    def put(self, key_hash: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # bounded; a burst of distinct keys just re-reads
        self._entries[key_hash] = (time.monotonic(), principal)
