"""Everything checkable without running is a 422 with a stable code, and writes nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.api_fixtures import Api
from tests.runs.bodies import chat, layer


def _snapshot(*entries: tuple[str, str], **states: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "layers": [
            {"name": name, "lifecycle_state": state, "runtime_state": states.get(name, {})}
            for name, state in entries
        ],
    }


SUSPENDED_CHAT = _snapshot(("prompt", "suspended"), ("history", "suspended"), ("llm", "suspended"))


def _with(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body.update(changes)
    return body


def _layers(*specs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"composition": {"layers": list(specs)}, **extra}


CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    (
        "unknown layer type",
        _layers(layer("llm", "llm.nope")),
        "unknown_layer_type",
        "llm",
    ),
    (
        "unknown dependency field",
        _layers(layer("prompt", "plain.prompt"), layer("llm", "llm.test", deps={"x": "prompt"})),
        "unknown_dependency_field",
        "llm",
    ),
    (
        "duplicate layer name",
        _layers(layer("p", "plain.prompt"), layer("p", "plain.prompt"), layer("llm", "llm.test")),
        "duplicate_layer_name",
        "p",
    ),
    (
        "config failing its schema",
        _layers(layer("prompt", "plain.prompt", {"prefixx": "typo"}), layer("llm", "llm.test")),
        "invalid_layer_config",
        "prompt",
    ),
    (
        "bad output schema",
        _layers(
            layer("llm", "llm.test"),
            layer("output", "output.json_schema", {"json_schema": {"type": "array"}}),
        ),
        "invalid_layer_config",
        "output",
    ),
    (
        "unknown model provider",
        _layers(layer("llm", "llm.openai", {"provider": "nowhere", "model": "m"})),
        "unknown_model_provider",
        "llm",
    ),
    (
        "snapshot with the wrong schema version",
        _with(chat(), session_snapshot={**SUSPENDED_CHAT, "schema_version": 9}),
        "snapshot_version_mismatch",
        None,
    ),
    (
        "snapshot names in another order",
        _with(
            chat(),
            session_snapshot=_snapshot(
                ("history", "suspended"), ("prompt", "suspended"), ("llm", "suspended")
            ),
        ),
        "snapshot_layers_mismatch",
        None,
    ),
    (
        "snapshot with a CLOSED entry",
        _with(
            chat(),
            session_snapshot=_snapshot(
                ("prompt", "suspended"), ("history", "closed"), ("llm", "suspended")
            ),
        ),
        "snapshot_layer_closed",
        "history",
    ),
    (
        "snapshot with an ACTIVE entry",
        _with(
            chat(),
            session_snapshot=_snapshot(
                ("prompt", "suspended"), ("history", "active"), ("llm", "suspended")
            ),
        ),
        "snapshot_layer_active",
        "history",
    ),
    (
        "snapshot whose runtime state fails its schema",
        _with(
            chat(),
            session_snapshot=_snapshot(
                ("prompt", "suspended"),
                ("history", "suspended"),
                ("llm", "suspended"),
                history={"messages": "not a list"},
            ),
        ),
        "invalid_runtime_state",
        "history",
    ),
    (
        "unknown on_exit layer",
        _with(chat(), on_exit={"layers": {"ghost": "delete"}}),
        "unknown_on_exit_layer",
        "ghost",
    ),
    (
        "cleanup without a snapshot",
        _layers(layer("prompt", "plain.prompt"), purpose="cleanup"),
        "snapshot_required",
        None,
    ),
    (
        "model run without an llm layer",
        _layers(layer("prompt", "plain.prompt")),
        "llm_layer_required",
        None,
    ),
    (
        "a second history layer",
        _layers(
            layer("history", "pydantic_ai.history"),
            layer("memory", "pydantic_ai.history"),
            layer("llm", "llm.test"),
        ),
        "duplicate_history_layer",
        "memory",
    ),
    (
        "a second output layer",
        _layers(
            layer("llm", "llm.test"),
            layer("output", "output.json_schema", {"json_schema": {"type": "object"}}),
            layer("output2", "output.json_schema", {"json_schema": {"type": "object"}}),
        ),
        "duplicate_output_layer",
        "output2",
    ),
    (
        "a reserved name on another layer type",
        _layers(layer("llm", "plain.prompt")),
        "reserved_layer_name",
        "llm",
    ),
    (
        "a model layer under another name",
        _layers(layer("model", "llm.test")),
        "reserved_layer_name",
        "model",
    ),
    (
        "deferred results without history",
        _layers(layer("llm", "llm.test"), deferred_tool_results={"calls": {"c1": "yes"}}),
        "history_layer_required",
        None,
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "layer_name"),
    [pytest.param(body, code, name, id=title) for title, body, code, name in CASES],
)
def test_invalid_requests_are_422_with_a_code_and_create_no_run(
    api: Api, body: dict[str, Any], code: str, layer_name: str | None
) -> None:
    response = api.post_run(body)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if layer_name is not None:
        assert error["details"]["layer"] == layer_name
        assert layer_name in error["message"]
    listed = api.client.get("/v1/runs", headers=api.headers()).json()
    assert listed["items"] == []


def test_snapshot_mismatch_message_names_expected_and_got(api: Api) -> None:
    snapshot = _snapshot(("prompt", "suspended"), ("llm", "suspended"))
    response = api.post_run(_with(chat(), session_snapshot=snapshot))

    message = response.json()["error"]["message"]
    assert "history" in message and "prompt" in message


def test_unknown_request_fields_are_rejected(api: Api) -> None:
    response = api.post_run(_with(chat(), user_prompt="not a field"))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "request_invalid"
    assert error["details"]["errors"][0]["loc"] == ["body", "user_prompt"]


def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = api.client.post(
        "/v1/runs",
        content=b"{not json",
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "request_invalid"


def test_an_oversized_body_is_413(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(max_body_bytes=2048)
    body = chat("x" * 4096)

    response = api.post_run(body)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_non_finite_numbers_are_422_and_not_stored(api: Api) -> None:
    body = (
        b'{"composition": {"layers": [{"name": "llm", "type": "llm.test"}]},'
        b' "metadata": {"x": NaN}}'
    )
    response = api.client.post(
        "/v1/runs", content=body, headers={**api.headers(), "Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "request_invalid"
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_plans_are_reused_only_for_the_same_layers_and_rejections_are_never_reused(
    api: Api,
) -> None:
    """`build_compositor` keeps plans: a request that differs only in its configs (the prompt)
    reuses one; a change to the layers' deps is checked again, and so is a rejected one."""
    assert api.post_run(chat("first")).status_code == 202
    assert api.post_run(chat("second")).status_code == 202
    broken = chat()
    broken["composition"]["layers"][2]["deps"] = {"x": "prompt"}  # llm.test has no field x
    for _ in range(2):
        response = api.post_run(broken)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "unknown_dependency_field"
    assert api.post_run(chat("third")).status_code == 202
    listed = api.client.get("/v1/runs", headers=api.headers()).json()["items"]
    assert len(listed) == 3  # the three accepted, none of the rejected


def test_a_plan_is_shared_by_equal_compositions_and_not_by_different_metadata() -> None:
    from app.config import Settings
    from app.layers import LayerRegistry
    from app.runs.schemas import RunComposition
    from app.runs.validation import build_compositor

    registry = LayerRegistry.default(Settings())
    layers = chat()["composition"]["layers"]
    one = build_compositor(RunComposition.model_validate({"layers": layers}), registry)
    again = build_compositor(
        RunComposition.model_validate({"layers": copy.deepcopy(layers)}), registry
    )
    tagged_layers = copy.deepcopy(layers)
    tagged_layers[0]["metadata"] = {"team": "a"}
    tagged = build_compositor(RunComposition.model_validate({"layers": tagged_layers}), registry)

    assert again is one
    assert tagged is not one
    assert tagged.names == one.names
    large_layers = copy.deepcopy(layers)
    large_layers[0]["metadata"] = {"notes": "x" * 5000}  # past PLAN_CACHE_MAX_METADATA
    large = RunComposition.model_validate({"layers": large_layers})
    assert build_compositor(large, registry) is not build_compositor(large, registry)
    other_registry = LayerRegistry.default(Settings())
    assert (
        build_compositor(RunComposition.model_validate({"layers": layers}), other_registry)
        is not one
    )
