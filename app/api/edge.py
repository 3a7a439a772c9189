"""The request edge: strings no database can store are refused before any handler runs.

PostgreSQL rejects NUL (`U+0000`) in `text` and `jsonb` values and unpaired UTF-16 surrogates
(`U+D800` to `U+DFFF`) in `jsonb`; SQLite stores both, and a NUL inside a `LIKE` pattern silently
truncates it. So every string a request carries is checked once, here, and a bad one is answered
with the same 422 `invalid_characters` on both databases, naming where it was
(`details.location`, e.g. `["body", "metadata", "k"]` or `["query", "q"]`), before anything is read
or stored:

- JSON bodies (`StrataRoute` decodes them instead of FastAPI): UTF-8 is decoded strictly (invalid
  UTF-8, surrogates encoded as UTF-8 included), then parsed. Only a `\\u0000` escape or one in
  `\\uD800` to `\\uDFFF` in the raw bytes can produce a bad string after that, so the parsed value
  is walked only when the raw bytes hold one (a body with none costs one byte search). Bodies
  nested too deeply or holding an integer too long to convert are 422 `request_invalid`
  (`json_invalid`), and so is an integer outside 64 bits (`int_out_of_range`, with its
  location): the JSON columns are written with orjson, which refuses those, so without this
  check a free-form object holding one (`metadata`, a tool entry…) was a 500. The value is
  walked only when the raw bytes hold a run of 19 digits.
- The decoded path, the raw query string (`%00`, a raw NUL byte) and header values (a NUL byte).

Percent-decoding of paths and queries replaces invalid UTF-8 with U+FFFD (never surrogates), so
those need only the NUL check.

It also refuses query parameters a route does not declare: 422 `unknown_query_parameter`, naming
them (`details.parameters`) and the ones the route accepts (`details.accepted`). FastAPI ignores
them, so a misspelt or unsupported filter (`GET /v1/runs?workflow_run=…`) used to answer an
unfiltered list that looked like an answer. The accepted names are read from the route's own
dependency tree (handler, route and router dependencies) when the route is built, so they cannot
drift from what the handler parses; dependencies added by `include_router` are not part of it
and must take no query parameters (`tests/api/test_query_parameters.py` compares every route's
names with its OpenAPI parameters). A route class may opt out
(`StrataRoute.rejects_unknown_query_parameters`): the seed protocol's routes do, see
`app.api.compat`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from app.api.lean import NO_BODY, LeanSolver, wants_lean
from app.api.request_context import bind_path_run_id
from app.errors import ValidationFailed

INT32_MAX = 2**31 - 1
"""The largest value of an `INTEGER` column on PostgreSQL (event seqs, version and revision
numbers): integer path, query and header parameters that reach such a column are bounded by it,
so a larger one is a 422 on both databases instead of an overflow in the driver."""

_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abAB][0-9a-fA-F]{2})")
"""A JSON escape that may decode to NUL or to half of a surrogate pair."""
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
"""Characters no database column takes: NUL and unpaired surrogates."""
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
"""A number with at least 19 digits: the shortest that can lie outside 64 bits."""
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
"""The integers orjson, which writes the JSON columns, can encode."""


def invalid_characters(location: list[str | int]) -> ValidationFailed:
    """422 `invalid_characters`; a bad character in a location's key is shown as its escape."""
    location = [_escaped(part) if isinstance(part, str) else part for part in location]
    where = ".".join(str(part) for part in location)
    return ValidationFailed(
        f"{where} holds a NUL character, an unpaired surrogate or invalid UTF-8; "
        "such text cannot be stored",
        code="invalid_characters",
        details={"location": location},
    )


def _escaped(text: str) -> str:
    return _BAD_TEXT.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def decode_json_body(raw: bytes) -> Any:
    """The JSON value of a request body, or an error that the API answers with 422.

    Raises:
        ValidationFailed: `invalid_characters` (invalid UTF-8, NUL, an unpaired surrogate).
        RequestValidationError: the bytes are not JSON, nest too deeply, or hold a number
            Python refuses to convert (`request_invalid`).
    """
    if raw.isascii():
        text: str | bytes = raw  # ASCII is valid UTF-8 and encodes no surrogate
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_characters(["body"]) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _json_invalid(error.msg, error.pos) from None
    except (RecursionError, ValueError) as error:
        # RecursionError: nested too deeply; ValueError: an integer past int_max_str_digits
        message = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise _json_invalid(message, 0) from None
    if _SUSPECT_ESCAPE.search(raw):
        location = _bad_string_location(value)
        if location is not None:
            raise invalid_characters(["body", *location])
    if _LONG_DIGITS.search(raw):
        location = _huge_integer_location(value)
        if location is not None:
            raise RequestValidationError(
                [
                    {
                        "type": "int_out_of_range",
                        "loc": ("body", *location),
                        "msg": "integers in a request must fit in 64 bits",
                        "input": None,
                    }
                ]
            )
    return value


def _json_invalid(message: str, position: int) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body", position),
                "msg": f"JSON decode error: {message}",
                "input": {},
                "ctx": {"error": message},
            }
        ]
    )


def _bad_string_location(value: Any) -> list[str | int] | None:
    """The path to the first key or string holding NUL or an unpaired surrogate, else None."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _BAD_TEXT.search(node):
                return path
        elif isinstance(node, dict):
            for key, item in node.items():
                if _BAD_TEXT.search(key):
                    return [*path, key]
                stack.append((item, [*path, key]))
        elif isinstance(node, list):
            stack.extend((item, [*path, index]) for index, item in enumerate(node))
    return None


def _huge_integer_location(value: Any) -> list[str | int] | None:
    """The path to the first integer outside what orjson encodes, else None."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, int) and not isinstance(node, bool):
            if not _INT64_MIN <= node <= _UINT64_MAX:
                return path
        elif isinstance(node, dict):
            stack.extend((item, [*path, key]) for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, [*path, index]) for index, item in enumerate(node))
    return None


def check_request_strings(scope: Scope) -> None:
    """Refuse a path, query or header that carries NUL (or a path with a lone surrogate)."""
    if _BAD_TEXT.search(scope["path"]):
        raise invalid_characters(["path"])
    query: bytes = scope.get("query_string", b"")
    if query and (b"%00" in query or b"\x00" in query):
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                raise invalid_characters(["query", name])
        raise invalid_characters(["query"])
    for name, value in scope.get("headers", ()):
        if b"\x00" in value:
            raise invalid_characters(["header", name.decode("latin-1")])


def declared_query_parameters(dependant: Dependant) -> frozenset[str]:
    """The query parameter names a route parses: every query field of its dependency tree, by
    the name a request uses (its alias); a pydantic model taken as query parameters adds its
    fields' names."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for field in current.query_params:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                for name, info in annotation.model_fields.items():
                    names.add(info.alias or name)
            else:
                names.add(field.alias)
        pending.extend(current.dependencies)
    return frozenset(names)


UNKNOWN_QUERY_PARAMETER = "unknown_query_parameter"
_UNKNOWN_QUERY_NOTE = (
    f"`{UNKNOWN_QUERY_PARAMETER}`: a query parameter this route does not declare "
    "(`details.parameters`)."
)


def check_query_parameters(request: Request, accepted: frozenset[str]) -> None:
    """Refuse a query parameter the route does not declare (422 `unknown_query_parameter`)."""
    unknown = sorted({name for name in request.query_params if name not in accepted})
    if not unknown:
        return
    listed = ", ".join(repr(name) for name in unknown)
    offered = ", ".join(sorted(accepted)) or "none"
    raise ValidationFailed(
        f"unknown query parameter(s) {listed}; this route accepts: {offered}",
        code=UNKNOWN_QUERY_PARAMETER,
        details={"parameters": unknown, "accepted": sorted(accepted)},
    )


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_plain_json(content_type: str) -> bool:
    """`application/json`, with parameters or not: a type FastAPI reads as JSON too (the lean
    solver takes only those; `_is_json` also takes `+json` types and odd spellings)."""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class _EdgeRequest(Request):
    """A request whose JSON body is decoded by `decode_json_body` (once)."""

    _edge_json: Any

    async def json(self) -> Any:
        if not hasattr(self, "_edge_json"):
            self._edge_json = decode_json_body(await self.body())
        return self._edge_json


class StrataRoute(APIRoute):
    """The route class of every API router: runs the edge checks before anything else, and
    binds a `{run_id}` path parameter to the request's log lines (`bind_path_run_id`).

    Dependencies (authentication included) and the handler run only for a request whose path,
    query (its characters and its parameter names), headers and JSON body passed them. Building
    a route that declares no role is an error (`app.api.roles.document_role`).
    """

    rejects_unknown_query_parameters: bool = True
    """Whether a query parameter the route does not declare is a 422 (see the module docstring)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        from app.api.roles import document_role  # roles → deps → lifespan: import when used

        document_role(self)
        if self.rejects_unknown_query_parameters:
            self._document_unknown_query_parameters()

    def _document_unknown_query_parameters(self) -> None:
        """Name `unknown_query_parameter` in the route's own 422 description; a route without
        one gets the 422 that its app documents for every route (`app.main.COMMON_ERRORS`)."""
        for status in (422, "422"):
            response = self.responses.get(status)
            if response is not None:
                description = str(response.get("description") or "").rstrip()
                if UNKNOWN_QUERY_PARAMETER not in description:
                    self.responses[status] = {
                        **response,
                        "description": f"{description} {_UNKNOWN_QUERY_NOTE}".strip(),
                    }

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None
        # called from `APIRoute.__init__`, once `self.dependant` exists
        self.query_parameters = declared_query_parameters(self.dependant)
        accepted = self.query_parameters if self.rejects_unknown_query_parameters else None
        binds_run_id = "run_id" in self.param_convertors
        solver = LeanSolver.for_route(self) if wants_lean(self) else None
        endpoint = self.endpoint

        async def edge_handler(request: Request) -> Response:
            check_request_strings(request.scope)
            if accepted is not None and request.scope.get("query_string"):
                check_query_parameters(request, accepted)
            if binds_run_id:
                bind_path_run_id(request.scope["path_params"])
            json_body: Any = NO_BODY
            if takes_body:
                request = _EdgeRequest(request.scope, request.receive)
                content_type = request.headers.get("content-type") or ""
                if _is_json(content_type) and await request.body():
                    # errors here are answered by the app's handlers
                    json_body = await request.json()
                    if not _is_plain_json(content_type):
                        json_body = NO_BODY  # FastAPI's parsing of the type decides
            if solver is not None:
                arguments = await solver.solve(request, json_body)
                if arguments is not None:
                    response: Response = await endpoint(**arguments)
                    return response
            return await handler(request)

        return edge_handler
