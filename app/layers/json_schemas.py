"""Checks for JSON schemas that requests supply (structured output, caller-hosted tools).

A schema from a request must be a valid Draft 2020-12 schema with `"type": "object"` at the top,
may only refer to its own `#/$defs/…` (no remote or recursive references), and stays within a
size and nesting bound so that checking, storing and sending it to a model stay cheap. Checking a
schema compiles its `pattern`s but never matches them against anything.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

MAX_SCHEMA_BYTES = 32_768
MAX_SCHEMA_DEPTH = 32
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def object_schema_problem(
    schema: Any, *, max_bytes: int = MAX_SCHEMA_BYTES, max_depth: int = MAX_SCHEMA_DEPTH
) -> str | None:
    """What is wrong with `schema` as an object schema from a request, or None if nothing."""
    if not isinstance(schema, dict):
        return "the schema must be a JSON object"
    if schema.get("type") != "object":
        return 'the schema must have "type": "object" at the top level'
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        return f"the schema is {size} bytes as JSON; at most {max_bytes} are allowed"
    depth_problem = _depth_or_ref_problem(schema, max_depth)
    if depth_problem is not None:
        return depth_problem
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return f"not a valid JSON schema: {error.message}"
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
