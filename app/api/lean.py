"""A lean argument solver for the hottest routes, with FastAPI's own solver behind it.

FastAPI solves a route's dependency tree generically on every request: it classifies each
parameter again (its aliases, whether it is a sequence or a model), builds a cache key per
dependency, a `Response` to collect headers, and parses the content type with `email`. On the
two requests every run costs (`POST /v1/runs`, `GET /v1/runs/{id}/wait`) that machinery cost
about as much CPU as the two handlers' own work (py-spy at c=8; bench/README.md, "The lean
solver and direct statements").

`LeanSolver` does the same work for a route whose tree is simple, worked out once when the route
is built: it calls the route's dependencies in FastAPI's order, then validates each path, query
and header parameter and the JSON body with the route's own pydantic fields (`ModelField.validate`,
what FastAPI calls), so the values a handler receives are the ones FastAPI would have passed.
It only ever answers the common case: whenever a value is missing or invalid, the body is not
plain JSON, a dependency is overridden or FastAPI's native telemetry observes the request, it
gives up (`solve` returns None) and the route's FastAPI handler answers instead, so every error
a client can see (422 details included) is FastAPI's. A dependency that raises (401, 403, 503)
raises through the lean path as it would through FastAPI's, in the same order.

A route opts in with `@lean` on its endpoint; `StrataRoute` refuses to build an opted-in route
that the lean solver cannot take (`LeanSolver.for_route` says why), so the fast path cannot be
lost silently. `tests/api/test_lean.py` sends the same requests through both paths.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

F = TypeVar("F", bound=Callable[..., Awaitable[Response]])

_LEAN_ATTRIBUTE = "__strata_lean__"
_SCALARS: frozenset[Any] = frozenset({str, int, float, bool, uuid.UUID})
"""Parameter types the lean solver takes (or these or None): FastAPI reads each as one value
of the request."""
_NOTHING = object()


def lean(endpoint: F) -> F:
    """Mark an endpoint for the lean solver. It must return a `Response` itself (the lean path
    does not serialize a return value) and its dependency tree must be simple (see
    `LeanSolver.for_route`)."""
    setattr(endpoint, _LEAN_ATTRIBUTE, True)
    return endpoint


def wants_lean(route: APIRoute) -> bool:
    return bool(getattr(route.endpoint, _LEAN_ATTRIBUTE, False))


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    source: str  # "path", "query" or "header"
    key: str  # the name the request uses
    field: Any  # FastAPI's ModelField
    loc: tuple[str, str]
    required: bool
    default: Any  # _NOTHING when the default must be copied or validated


@dataclass(frozen=True, slots=True)
class _Dependency:
    name: str | None  # the endpoint parameter it fills; None for route-level dependencies
    call: Callable[..., Awaitable[Any]]
    request_param: str | None


class LeanSolver:
    """The endpoint's arguments for a request, or None to leave the request to FastAPI."""

    __slots__ = ("_body", "_dependencies", "_params", "_request_param")

    def __init__(
        self,
        dependencies: list[_Dependency],
        parameters: list[_Param],
        body: Any,
        request_param: str | None,
    ) -> None:
        self._dependencies = dependencies
        self._params = parameters
        self._body = body
        self._request_param = request_param

    @classmethod
    def for_route(cls, route: APIRoute) -> LeanSolver:
        """The solver of `route`.

        Raises:
            TypeError: the route's tree holds something the lean solver does not take (a
                dependency with parameters of its own or sub-dependencies, a generator or
                sync dependency, cookies, a form, several body fields, a parameter that is a
                model or a sequence, another connection-level parameter); it names it.
        """
        dependant = route.dependant
        where = f"{sorted(route.methods or [])} {route.path}"
        if not inspect.iscoroutinefunction(route.endpoint):
            raise TypeError(f"{where}: a lean endpoint is an async function")
        _check_connection_params(dependant, where)
        if dependant.cookie_params:
            raise TypeError(f"{where}: the lean solver takes no cookie parameters")
        dependencies = [_dependency(sub, where) for sub in dependant.dependencies]
        parameters = [
            _param(field, source, where)
            for source, fields in (
                ("path", dependant.path_params),
                ("query", dependant.query_params),
                ("header", dependant.header_params),
            )
            for field in fields
        ]
        body = None
        if dependant.body_params:
            if len(dependant.body_params) > 1 or route._embed_body_fields:
                raise TypeError(f"{where}: the lean solver takes one body model, not embedded")
            body = route.body_field
            if body is None or isinstance(body.field_info, params.Form):
                raise TypeError(f"{where}: the lean solver takes a JSON body only")
        return cls(dependencies, parameters, body, dependant.request_param_name)

    async def solve(self, request: Request, json_body: Any) -> dict[str, Any] | None:
        """The endpoint's keyword arguments, or None when FastAPI must answer the request.

        `json_body` is the decoded body of a request whose content type is plain
        `application/json` (`app.api.edge`), `NO_BODY` otherwise.
        """
        scope = request.scope
        if scope.get("fastapi.telemetry") is not None or scope["app"].dependency_overrides:
            return None
        values: dict[str, Any] = {}
        for dependency in self._dependencies:
            if dependency.request_param is None:
                value = await dependency.call()
            else:
                value = await dependency.call(**{dependency.request_param: request})
            if dependency.name is not None:
                values[dependency.name] = value
        for param in self._params:
            raw = _source(request, param.source).get(param.key)
            if raw is None:
                if param.required:
                    return None
                values[param.name] = (
                    deepcopy(param.field.default) if param.default is _NOTHING else param.default
                )
                continue
            value, errors = param.field.validate(raw, values, loc=param.loc)
            if errors:
                return None
            values[param.name] = value
        if self._body is not None:
            if json_body is NO_BODY:
                return None
            value, errors = self._body.validate(json_body, values, loc=("body",))
            if errors:
                return None
            values[self._body.name] = value
        if self._request_param is not None:
            values[self._request_param] = request
        return values


NO_BODY = object()
"""`LeanSolver.solve`'s `json_body` when the request has no plain JSON body."""


def _source(request: Request, source: str) -> Mapping[str, Any]:
    if source == "path":
        path_params: Mapping[str, Any] = request.path_params
        return path_params
    if source == "query":
        return request.query_params
    return request.headers


def _check_connection_params(dependant: Dependant, where: str) -> None:
    others = [
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    ]
    if any(name is not None for name in others):
        raise TypeError(f"{where}: the lean solver passes the `Request` only")


def _dependency(sub: Dependant, where: str) -> _Dependency:
    """A dependency the lean solver can call: an async callable taking at most the request."""
    call = sub.call
    if call is None:
        raise TypeError(f"{where}: a dependency without a callable")
    own = (
        sub.path_params,
        sub.query_params,
        sub.header_params,
        sub.cookie_params,
        sub.body_params,
        sub.dependencies,
    )
    if any(own):
        raise TypeError(
            f"{where}: dependency {call!r} takes parameters or dependencies of its own; "
            "the lean solver calls dependencies with the request only"
        )
    _check_connection_params(sub, where)
    target = call if inspect.isroutine(call) else getattr(call, "__call__", None)  # noqa: B004
    if not inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise TypeError(f"{where}: dependency {call!r} is not a plain async function")
    return _Dependency(sub.name, call, sub.request_param_name)


def _param(field: Any, source: str, where: str) -> _Param:
    info = field.field_info
    alias = info.validation_alias
    if not _plain(info.annotation) or (alias is not None and alias != field.alias):
        raise TypeError(
            f"{where}: parameter {field.name!r} ({info.annotation!r}) is not a plain value"
        )
    key = field.alias
    if source == "header" and key == field.name and getattr(info, "convert_underscores", True):
        key = key.replace("_", "-")
    required = info.is_required()
    default: Any = _NOTHING
    if not required and not info.validate_default and _immutable(field.default):
        default = field.default
    elif not required and info.validate_default:
        raise TypeError(f"{where}: parameter {field.name!r} validates its default")
    return _Param(field.name, source, key, field, (source, key), required, default)


def _plain(annotation: Any) -> bool:
    if annotation in _SCALARS:
        return True
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return len(members) == 1 and members[0] in _SCALARS
    return False


def _immutable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | uuid.UUID)
