"""Typed dependencies of the route handlers: process state, database access, the caller.

Every dependency is an `async def`: FastAPI runs plain `def` dependencies in a thread pool, and
the hand-off to a thread and back costs more CPU than most of them do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Request
from fastapi.requests import HTTPConnection
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.request_context import bind_tenant_id
from app.db import is_database_unavailable
from app.errors import ServiceUnavailable, Unauthorized
from app.keys import Principal, authenticate, hash_key, touch_key
from app.lifespan import AppState

P = ParamSpec("P")
T = TypeVar("T")


def app_state(request: HTTPConnection) -> AppState:
    """The process state, for a handler that takes the `Request` instead of `State`.

    The hottest handlers (create a run, wait for one) do: FastAPI solves each dependency node
    again on every request, and a node costs more than this attribute lookup.
    """
    state: AppState = request.app.state.strata
    return state


async def get_state(request: Request) -> AppState:
    return app_state(request)


State = Annotated[AppState, Depends(get_state)]


class Writer:
    """`await write(job, *args)` runs `job(session, *args)` in a write transaction (the
    process's one write path, `app.db.Database.write`); the commit happens before it returns,
    so a client never sees a 2xx for something a failed commit then lost."""

    __slots__ = ("_state",)

    def __init__(self, state: AppState) -> None:
        self._state = state

    async def __call__(
        self,
        job: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        return await self._state.db.write(job, *args, **kwargs)


async def get_writer(state: State) -> Writer:
    return Writer(state)


Write = Annotated[Writer, Depends(get_writer)]


async def get_read_db(state: State) -> AsyncIterator[AsyncSession]:
    """A session for handlers that only read (never blocks on a writer); never commits."""
    async with state.db.reading() as session:
        yield session


ReadDb = Annotated[AsyncSession, Depends(get_read_db, scope="function")]

BEARER_DESCRIPTION = "An API key: `Authorization: Bearer <key>`."
"""The OpenAPI description of the bearer scheme (`app.api.roles.RoleRequirement` declares it)."""


def bearer_key(request: HTTPConnection) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, else None (parsed as FastAPI's
    `HTTPBearer` parses it: the scheme in any case, the key stripped)."""
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    if not key or scheme.lower() != "bearer":
        return None
    return key


def _required_key(request: HTTPConnection) -> str:
    """The request's bearer key; 401 `missing_api_key` without one."""
    key = bearer_key(request)
    if key is None:
        raise Unauthorized(
            "missing Authorization: Bearer <key> header",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


async def authenticate_request(request: HTTPConnection) -> Principal:
    """The caller of a request, from its bearer key.

    Resolved keys are cached for `STRATA_KEY_CACHE_SECONDS`; a lookup holds a read connection
    only for its own statement (a streaming route holds none), and concurrent lookups of one
    key share one read (`KeyCache.lookup`).

    Raises:
        Unauthorized: no bearer key (`missing_api_key`), or an unknown or revoked one
            (`invalid_api_key`).
    """
    state = app_state(request)
    key_hash = hash_key(_required_key(request))
    principal = state.keys.get(key_hash)
    if principal is not None:
        bind_tenant_id(principal.tenant_id)  # this request's later log lines name the tenant
        return principal
    found = await _look_up(state, key_hash)
    if found is None:
        raise Unauthorized(
            "unknown or revoked API key",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal, stale = found
    bind_tenant_id(principal.tenant_id)  # this request's later log lines name the tenant
    if stale:
        with contextlib.suppress(Exception):  # bookkeeping only; never fail a request on it
            await state.db.write(touch_key, principal.api_key_id)
    return principal


async def _look_up(state: AppState, key_hash: str) -> tuple[Principal, bool] | None:
    """The key's principal from the database, one read shared by concurrent callers."""
    return await state.keys.lookup(
        key_hash, lambda: state.db.read(authenticate, "", key_hash=key_hash)
    )


class KeyCheck:
    """Whether the key a long-lived request (an event stream) was opened with still works.

    `still_valid()` is cheap to call often: it answers from the key cache when the cache's
    entry is at most half the cache time old, else it looks the key up (one read shared by
    every stream and request using that key). Called at least every half cache time, it
    notices a revocation within the cache time (`STRATA_KEY_CACHE_SECONDS`): the answer it
    gives is never older than half of it, and it is asked again at most half of it later.
    A database that cannot be reached counts as "still valid" (the stream goes on, like the
    requests whose key is cached).
    """

    __slots__ = ("_checked_at", "_key_hash", "_state", "interval")

    def __init__(self, state: AppState, key_hash: str) -> None:
        self._state = state
        self._key_hash = key_hash
        self.interval = state.keys.ttl_seconds / 2
        self._checked_at = time.monotonic()

    async def still_valid(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at < self.interval:
            return True
        self._checked_at = now
        if self._state.keys.get(self._key_hash, max_age=self.interval) is not None:
            return True
        try:
            return await _look_up(self._state, self._key_hash) is not None
        except Exception as error:
            if is_database_unavailable(error):
                return True
            raise


async def get_key_check(request: Request) -> KeyCheck:
    """For routes that also take the caller (`Reader`…), which checks the key itself and
    declares the bearer scheme in the OpenAPI document."""
    return KeyCheck(app_state(request), hash_key(_required_key(request)))


StreamKeyCheck = Annotated[KeyCheck, Depends(get_key_check)]


async def require_accepting(request: Request) -> None:
    """New work is refused with 503 while the process shuts down.

    Takes the request rather than `State`: FastAPI solves every sub-dependency of every
    request again (its cache saves only the call), so a leaf costs less on the hot routes.
    """
    state = app_state(request)
    if not state.accepting:
        raise ServiceUnavailable(
            "the service is shutting down; retry on another instance",
            code="shutting_down",
            headers={"Retry-After": "1"},
        )


Accepting = Depends(require_accepting)
