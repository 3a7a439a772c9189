"""Number and boolean types for request schemas that accept exactly what they declare.

Pydantic's default (lax) mode turns `true` into `1` and `0` into `false`; an API whose OpenAPI
document says `number` or `boolean` must refuse the other (a client that sends
`"wait_seconds": false` has a bug worth a 422). `StrictFloat` still takes integers: JSON has one
number type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, StrictBool, StrictFloat, StrictInt


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


SchemaVersion1 = Annotated[Literal[1], BeforeValidator(_not_a_bool)]
"""`schema_version: 1` (and not `true`)."""

__all__ = ["SchemaVersion1", "StrictBool", "StrictFloat", "StrictInt"]
