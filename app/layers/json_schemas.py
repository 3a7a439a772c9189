"""Checks for JSON schemas that requests supply (structured output, caller-hosted tools).

A schema from a request must be a valid Draft 2020-12 schema with `"type": "object"` at the top,
may only refer to its own `#/$defs/…` (no remote or recursive references), and stays within a
size and nesting bound so that checking, storing and sending it to a model stay cheap. It is
compiled by `app.jsonschema_check` (the linear-time regex engine): a pattern that engine cannot
run is `unsupported_pattern`, whatever layer the schema belongs to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.jsonschema_check import UNSUPPORTED_PATTERN, SchemaRejected, check_schema

MAX_SCHEMA_BYTES = 32_768
MAX_SCHEMA_DEPTH = 32
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


@dataclass(frozen=True)
class SchemaProblem:
    """What is wrong with a schema; `code` is `unsupported_pattern` for a regex the linear-time
    engine cannot run, else None (the caller's own code applies)."""

    message: str
    code: str | None = None


def object_schema_problem(
    schema: Any, *, max_bytes: int = MAX_SCHEMA_BYTES, max_depth: int = MAX_SCHEMA_DEPTH
) -> SchemaProblem | None:
    """What is wrong with `schema` as an object schema from a request, or None if nothing."""
    if not isinstance(schema, dict):
        return SchemaProblem("the schema must be a JSON object")
    if schema.get("type") != "object":
        return SchemaProblem('the schema must have "type": "object" at the top level')
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        return SchemaProblem(f"the schema is {size} bytes as JSON; at most {max_bytes} are allowed")
    depth_problem = _depth_or_ref_problem(schema, max_depth)
    if depth_problem is not None:
        return SchemaProblem(depth_problem)
    try:
        check_schema(schema)
    except SchemaRejected as error:
        code = UNSUPPORTED_PATTERN if error.code == UNSUPPORTED_PATTERN else None
        return SchemaProblem(error.message, code)
    return None


def _depth_or_ref_problem(schema: dict[str, Any], max_depth: int) -> str | None:
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return f"the schema nests deeper than {max_depth} levels"
        if isinstance(node, dict):
            for keyword in _REF_KEYWORDS:
                ref = node.get(keyword)
                if isinstance(ref, str) and not ref.startswith("#/$defs/"):
                    return f"only local #/$defs/ references are allowed, got {keyword} {ref!r}"
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return None
