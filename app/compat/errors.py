"""The protocol's error body: FastAPI's `{"detail": …}`.

The seed's client maps 404 to "not found", 422 to "validation" and any other status to a generic
HTTP error carrying the status, so the status is what matters; the body still says what went
wrong, in the form FastAPI gives:

- 422: a list of `{type, loc, msg}` items. A body that does not match the schema lists pydantic's
  errors; one of Strata's domain errors (an unknown layer type, a snapshot that does not fit the
  composition…) is one item whose `type` is Strata's error code, whose `loc` says where
  (`["body", "composition"]`) and whose `ctx` holds Strata's details.
- anything else: the message, as a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def detail_body(
    status: int, code: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body of an error answered under the protocol's prefix."""
    details = details or {}
    if status != 422:
        return {"detail": message}
    listed = details.get("errors")
    if code == "request_invalid" and isinstance(listed, list):
        return {"detail": [_item(entry) for entry in listed if isinstance(entry, Mapping)]}
    item: dict[str, Any] = {"type": code, "loc": _location(details), "msg": message}
    if details:
        item["ctx"] = dict(details)
    return {"detail": [item]}


def _item(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": str(entry.get("type") or "value_error"),
        "loc": [part if isinstance(part, int) else str(part) for part in entry.get("loc") or ()],
        "msg": str(entry.get("msg") or ""),
    }


def _location(details: Mapping[str, Any]) -> list[str | int]:
    """`details.location` when Strata gives one, else the body field it names, else `body`."""
    location = details.get("location")
    if isinstance(location, list) and location:
        return [part if isinstance(part, int) else str(part) for part in location]
    field = details.get("field")
    if isinstance(field, str) and field:
        return ["body", *field.split(".")]
    return ["body"]
