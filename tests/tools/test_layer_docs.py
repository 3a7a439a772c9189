"""The OpenAPI document describes every layer type's config, new tool and model layers included."""

from __future__ import annotations

from tests.api_fixtures import Api


def test_openapi_describes_each_layer_types_config(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]

    mapping = schemas["RunLayerSpec"]["x-strata-layer-configs"]
    for type_id in ("tools.mcp", "tools.http", "tools.external", "llm.anthropic", "llm.openai"):
        assert mapping[type_id] == {"$ref": f"#/components/schemas/LayerConfig.{type_id}"}
    assert "LayerConfig.<type>" in schemas["RunLayerSpec"]["properties"]["config"]["description"]
    mcp = schemas["LayerConfig.tools.mcp"]["properties"]
    assert set(mcp) == {"server", "tools", "tool_prefix", "timeout_seconds"}
    assert "STRATA_MCP_SERVERS" in mcp["server"]["description"]
    http = schemas["LayerConfig.tools.http"]
    assert http["required"] == ["endpoint", "tools"]
    assert "STRATA_TOOL_ENDPOINTS" in http["properties"]["endpoint"]["description"]
    tool = schemas["HttpToolSpec"]["properties"]
    assert set(tool) == {"name", "description", "parameters"}
    assert '"type": "object"' in tool["parameters"]["description"]
    anthropic = schemas["LayerConfig.llm.anthropic"]["properties"]
    assert "stop_sequences" in anthropic["settings"]["description"]
