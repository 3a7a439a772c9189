"""The layer types' config models in the OpenAPI document.

A run's layer configs travel as plain JSON objects (`RunLayerSpec.config`) and are validated per
type when the run is created, so the request schema alone cannot say what each type accepts.
This adds every type on the server's allow-list to `components.schemas` as
`LayerConfig.<type id>` (the config model's own JSON schema, with its field descriptions) and
maps the type ids to them under `x-strata-layer-configs` on `RunLayerSpec`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.layers import LayerRegistry

_REF_TEMPLATE = "#/components/schemas/{model}"


def document_layer_configs(app: FastAPI, registry: LayerRegistry) -> None:
    """Make `app.openapi()` include the config schema of every registered layer type."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
        mapping: dict[str, dict[str, str]] = {}
        for type_id, provider in sorted(registry.providers.items()):
            config_schema = provider.config_type.model_json_schema(ref_template=_REF_TEMPLATE)
            for name, definition in config_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            name = f"LayerConfig.{type_id}"
            components[name] = config_schema
            mapping[type_id] = {"$ref": _REF_TEMPLATE.format(model=name)}
        spec = components.get("RunLayerSpec")
        if spec is not None:
            spec["x-strata-layer-configs"] = mapping
            config = spec.get("properties", {}).get("config")
            if config is not None:
                config["description"] = (
                    f"{config.get('description', '')} The schema of each layer type's config is "
                    "`components.schemas['LayerConfig.<type>']` (listed under "
                    "`x-strata-layer-configs`)."
                ).strip()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented customization
