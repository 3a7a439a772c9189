"""Typed dependencies of the route handlers: process state, the unit of work, the caller."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.request_context import bind_tenant_id
from app.db import unit_of_work
from app.errors import ServiceUnavailable, Unauthorized
from app.keys import Principal, authenticate, touch_key
from app.lifespan import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.strata
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_db(state: State) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed before the response is sent, rolled back on error."""
    async with unit_of_work(state.session_factory) as session:
        yield session


# scope="function": the commit happens before the response goes out, so a client never sees a
# 202 for a run that a failed commit then lost.
Db = Annotated[AsyncSession, Depends(get_db, scope="function")]


async def get_read_db(state: State) -> AsyncIterator[AsyncSession]:
    """A session for handlers that only read (no write lock on SQLite); never commits."""
    async with state.read_session_factory() as session:
        yield session


ReadDb = Annotated[AsyncSession, Depends(get_read_db, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


async def get_principal(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise Unauthorized(
            "missing Authorization: Bearer <key> header", code="missing_api_key", headers=challenge
        )
    # A short session of its own: a streaming route must not hold a connection for the stream.
    async with state.read_session_factory() as db:
        found = await authenticate(db, credentials.credentials)
    if found is None:
        raise Unauthorized("unknown or revoked API key", code="invalid_api_key", headers=challenge)
    principal, stale = found
    bind_tenant_id(principal.tenant_id)  # this request's later log lines name the tenant
    if stale:
        with contextlib.suppress(Exception):  # bookkeeping only; never fail a request on it
            async with unit_of_work(state.session_factory) as session:
                await touch_key(session, principal.api_key_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_accepting(state: State) -> None:
    """New work is refused with 503 while the process shuts down."""
    if not state.accepting:
        raise ServiceUnavailable(
            "the service is shutting down; retry on another instance",
            code="shutting_down",
            headers={"Retry-After": "1"},
        )


Accepting = Depends(require_accepting)
