"""`output.json_schema`: the run's answer is a JSON object validated against a JSON schema.

The schema is checked when the run is created (it must be a valid Draft 2020-12 schema with
`"type": "object"` at the top and only local `#/$defs/` references), so a bad schema is a 422 and
not a failed run. The model sees it as the `final_output` tool; pydantic-ai validates the
arguments and asks the model to retry when they do not fit.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import Field, JsonValue, field_validator
from pydantic_ai import ModelRetry, StructuredDict

from app.compositor import LayerConfig, NoLayerDeps
from app.layers.base import OutputLayer

OUTPUT_TOOL_NAME = "final_output"


class JsonSchemaOutputConfig(LayerConfig):
    json_schema: dict[str, JsonValue] = Field(description="A JSON schema with type object.")
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("json_schema")
    @classmethod
    def _valid_object_schema(cls, schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if schema.get("type") != "object":
            raise ValueError('the schema must have "type": "object" at the top level')
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise ValueError(f"not a valid JSON schema: {error.message}") from None
        _check_local_refs(schema)
        return schema


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
        errors = sorted(Draft202012Validator(self.config.json_schema).iter_errors(value), key=str)
        if errors:
            details = "; ".join(
                f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
                for error in errors[:5]
            )
            raise ModelRetry(f"the output does not match the JSON schema: {details}")
        return value
