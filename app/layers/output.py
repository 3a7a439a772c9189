"""`output.json_schema`: the run's answer is a JSON object validated against a JSON schema.

The schema is checked when the run is created (it must be a valid Draft 2020-12 schema with
`"type": "object"` at the top and only local `#/$defs/` references, and every regular expression
in it must run on the linear-time engine of `app.jsonschema_check`), so a bad schema is a 422 and
not a failed run. The model sees it as the `final_output` tool; the answer is validated against
the schema, and `ModelRetry` asks the model to fix it when it does not fit.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, PrivateAttr, field_validator
from pydantic_ai import ModelRetry, StructuredDict
from pydantic_core import PydanticCustomError

from app.compositor import LayerConfig, NoLayerDeps
from app.jsonschema_check import UNSUPPORTED_PATTERN, CheckedSchema, SchemaRejected, check_schema
from app.layers.base import OutputLayer

OUTPUT_TOOL_NAME = "final_output"
MAX_REPORTED_VIOLATIONS = 5


class JsonSchemaOutputConfig(LayerConfig):
    json_schema: dict[str, JsonValue] = Field(description="A JSON schema with type object.")
    description: str | None = Field(default=None, max_length=2000)
    _checked: CheckedSchema | None = PrivateAttr(default=None)

    @field_validator("json_schema")
    @classmethod
    def _valid_object_schema(cls, schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if schema.get("type") != "object":
            raise ValueError('the schema must have "type": "object" at the top level')
        _check_local_refs(schema)
        try:
            check_schema(schema)
        except SchemaRejected as error:
            if error.code == UNSUPPORTED_PATTERN:
                # its own error type, so the API can answer with a precise code
                raise PydanticCustomError(
                    UNSUPPORTED_PATTERN, error.message, {"schema_path": error.path}
                ) from None
            raise ValueError(error.message) from None
        return schema

    @property
    def checked_schema(self) -> CheckedSchema:
        """The schema compiled for the linear-time engine (once per config object)."""
        if self._checked is None:
            self._checked = check_schema(self.json_schema)
        return self._checked


def _check_local_refs(node: Any) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#/$defs/"):
            raise ValueError(f"only local #/$defs/ references are allowed, got {ref!r}")
        for value in node.values():
            _check_local_refs(value)
    elif isinstance(node, list):
        for value in node:
            _check_local_refs(value)


class JsonSchemaOutputLayer(OutputLayer[NoLayerDeps, JsonSchemaOutputConfig]):
    type_id = "output.json_schema"

    def output_type(self) -> Any:
        return StructuredDict(
            dict(self.config.json_schema),
            name=OUTPUT_TOOL_NAME,
            description=self.config.description,
        )

    def validate_output(self, value: Any) -> Any:
        """Check the answer against the schema; `ModelRetry` tells the model what to fix."""
        violations = self.config.checked_schema.violations(value)
        if violations:
            details = "; ".join(
                f"{violation.path}: {violation.message}"
                for violation in violations[:MAX_REPORTED_VIOLATIONS]
            )
            raise ModelRetry(f"the output does not match the JSON schema: {details}")
        return value
