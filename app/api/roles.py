"""Roles: which key may call which route, declared on every route.

A route states the least role it needs by how it takes the caller: a parameter typed `Reader`,
`Runner` or `Admin` (the caller's `Principal`, once its key's role allows it; 403 `forbidden`
otherwise), or `dependencies=[Public]` for the few routes that need no key (health, readiness,
metrics, which has its own token). `admin` may do everything `runner` may, and `runner`
everything `reader` may (`ApiKeyRole.allows`).

`StrataRoute` refuses to build a route that declares none (or more than one), so a new route
cannot forget its role: the app does not start. Each route's OpenAPI description says the role,
and its responses list 401 and, above `reader`, 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPBearer

from app.api.deps import BEARER_DESCRIPTION, authenticate_request
from app.errors import Forbidden
from app.keys import Principal
from app.models import ApiKeyRole


class RoleRequirement(HTTPBearer):
    """A dependency: the caller, when its key's role allows `role` (403 `forbidden` otherwise).

    It is FastAPI's bearer scheme itself (same scheme name and description, so the OpenAPI
    document declares one `HTTPBearer` security scheme), and it reads the header, resolves the
    key and checks the role in one call with no sub-dependencies: FastAPI solves a route's
    dependency tree node by node on every request, and on the hot routes (create a run, wait
    for it) the tree of the earlier design (role → principal → state + bearer) cost more CPU
    than the handlers did (bench/README.md).
    """

    def __init__(self, role: ApiKeyRole) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer", description=BEARER_DESCRIPTION)
        self.role = role

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await authenticate_request(request)
        if not principal.role.allows(self.role):
            raise Forbidden(
                f"this needs a key with the {self.role.value!r} role; "
                f"this key is a {principal.role.value!r} key",
                details={"required_role": self.role.value, "key_role": principal.role.value},
            )
        return principal


class _PublicMarker:
    """A dependency that does nothing: it declares that a route needs no API key."""

    async def __call__(self) -> None:  # async: FastAPI runs plain `def`s in a thread
        return None


_PUBLIC = _PublicMarker()
Public = Depends(_PUBLIC)
"""`dependencies=[Public]`: a route anyone may call (health, readiness, metrics)."""

Reader = Annotated[Principal, Depends(RoleRequirement(ApiKeyRole.READER))]
"""The caller; any key of the tenant (reads)."""
Runner = Annotated[Principal, Depends(RoleRequirement(ApiKeyRole.RUNNER))]
"""The caller; a `runner` or `admin` key (runs, sessions, node runs, agent and binding writes)."""
Admin = Annotated[Principal, Depends(RoleRequirement(ApiKeyRole.ADMIN))]
"""The caller; an `admin` key (the tenant's keys and settings)."""

_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}

PUBLIC = "public"
"""What `declared_role` answers for a route marked `Public`."""


def declared_role(dependant: Dependant) -> str | None:
    """The role a route's dependency tree declares (`PUBLIC` for public routes), else None.

    Raises:
        TypeError: the route declares more than one.
    """
    found: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        if isinstance(current.call, RoleRequirement):
            found.add(current.call.role.value)
        elif current.call is _PUBLIC:
            found.add(PUBLIC)
        stack.extend(current.dependencies)
    if len(found) > 1:
        raise TypeError(f"a route declares several roles: {sorted(found)}")
    return found.pop() if found else None


def document_role(route: APIRoute) -> None:
    """Refuse a route without a role; say the role in its OpenAPI description and responses."""
    role = declared_role(route.dependant)
    if role is None:
        raise TypeError(
            f"route {sorted(route.methods or [])} {route.path} declares no role: take the caller "
            "as `Reader`, `Runner` or `Admin` (app.api.roles), or add `dependencies=[Public]`"
        )
    if role == PUBLIC:
        return
    note = f"Needs a key with the `{role}` role (or a higher one)."
    route.description = f"{route.description}\n\n{note}".strip()
    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "`missing_api_key` or `invalid_api_key`.", "content": _JSON_ERROR},
    }
    if role != ApiKeyRole.READER.value:
        responses[403] = {
            "description": f"`forbidden`: the key's role is below `{role}`.",
            "content": _JSON_ERROR,
        }
    route.responses = {**responses, **route.responses}


def route_roles(app: FastAPI) -> Iterator[tuple[str, str, str | None]]:
    """`(method, path, role)` for every API route of `app` (role None: none declared)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            role = declared_role(route.dependant)
            for method in sorted(context.methods or []):
                yield method, str(context.path), role
