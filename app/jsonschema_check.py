"""JSON schemas that requests supply: checked when the request arrives, evaluated in linear time.

A request may carry a JSON schema (an `output.json_schema` layer today; tool parameter schemas
later). Its regular expressions — `pattern`, the keys of `patternProperties`, a `propertyNames`
subschema's `pattern`, anywhere in the schema — come from the caller, so evaluating them with a
backtracking engine (Python's `re`) lets one request pin a CPU with the interpreter lock held and
stall the whole process (`^(a+)+$` against `"aaaa…a!"`).

Everything here goes through jsonschema-rs with its standard regex engine (`RegexOptions`: the
Rust `regex` crate, finite automata, matching time linear in the input, bounded compile size).
That engine has no backreferences and no lookaround, so a schema that needs them cannot be
compiled: `check_schema` refuses it with `SchemaRejected(code="unsupported_pattern")` and the
JSON pointer of the offending pattern, which the API turns into a 422 before anything is stored.
References are resolved offline: a `$ref` to a URL never makes the server fetch anything.

Invariants: `check_schema` is the only way to get a `CheckedSchema`, so a schema that is evaluated
was compiled by the linear-time engine first; nothing here imports Python's `re` or `jsonschema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

__all__ = ["CheckedSchema", "SchemaRejected", "SchemaViolation", "check_schema"]

_REGEX_OPTIONS = jsonschema_rs.RegexOptions(size_limit=1 << 20, dfa_size_limit=1 << 20)
"""The linear-time engine, with compiled patterns and their DFA cache capped at 1 MiB each (a
`(a{1000}){1000}` is refused instead of growing without bound)."""

UNSUPPORTED_PATTERN = "unsupported_pattern"
INVALID_JSON_SCHEMA = "invalid_json_schema"


class SchemaRejected(ValueError):
    """A schema that cannot be used. `code` is stable; `path` is a JSON pointer into the schema."""

    def __init__(self, message: str, *, code: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.path = path


@dataclass(frozen=True)
class SchemaViolation:
    """One way an instance does not match: where (`path`, `/`-joined, `(root)` for the root)."""

    path: str
    message: str


class CheckedSchema:
    """A compiled Draft 2020-12 schema whose every pattern runs on the linear-time engine."""

    def __init__(self, validator: jsonschema_rs.Draft202012Validator) -> None:
        self._validator = validator

    def violations(self, instance: Any) -> list[SchemaViolation]:
        """Every violation, in a stable order (sorted by path, then message)."""
        found = [
            SchemaViolation(
                path="/".join(str(part) for part in error.instance_path) or "(root)",
                message=error.message,
            )
            for error in self._validator.iter_errors(instance)
        ]
        return sorted(found, key=lambda violation: (violation.path, violation.message))

    def is_valid(self, instance: Any) -> bool:
        return bool(self._validator.is_valid(instance))


def check_schema(schema: Mapping[str, Any]) -> CheckedSchema:
    """Compile `schema` (Draft 2020-12) for the linear-time engine.

    Raises:
        SchemaRejected: `unsupported_pattern` when a regular expression needs a backtracking
            engine (backreferences, lookaround) or is too large to compile; `invalid_json_schema`
            when the schema does not follow the Draft 2020-12 meta-schema or cannot be resolved.
    """
    try:
        validator = jsonschema_rs.Draft202012Validator(
            dict(schema),
            validate_formats=False,
            pattern_options=_REGEX_OPTIONS,
            offline=True,
        )
    except jsonschema_rs.ValidationError as error:
        raise _rejection(error) from None
    except (ValueError, TypeError) as error:  # not JSON-like at all
        raise SchemaRejected(
            f"not a valid JSON schema: {error}", code=INVALID_JSON_SCHEMA, path=""
        ) from None
    return CheckedSchema(validator)


def _rejection(error: jsonschema_rs.ValidationError) -> SchemaRejected:
    path = "".join(f"/{_escape(part)}" for part in error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Format) and kind.format == "regex":
        return SchemaRejected(
            f"the regular expression at {path or '/'} cannot run on the server's linear-time "
            "regex engine (backreferences and lookaround are not supported, and a pattern must "
            "compile to less than 1 MiB)",
            code=UNSUPPORTED_PATTERN,
            path=path,
        )
    return SchemaRejected(
        f"not a valid JSON schema at {path or '/'}: {error.message}",
        code=INVALID_JSON_SCHEMA,
        path=path,
    )


def _escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")
