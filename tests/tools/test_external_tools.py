"""`tools.external`: the caller runs the tool between two runs; a call pauses the run."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_fixtures import Api
from tests.runs.bodies import layer
from tests.tools.bodies import events_of, history_tool_returns, tool_run

LOOKUP = {
    "name": "lookup_order",
    "description": "Find an order in the caller's system.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
}
REFUND = {"name": "refund", "parameters": {"type": "object"}}


def external(*tools: dict[str, Any]) -> dict[str, Any]:
    return layer("engine", "tools.external", {"tools": list(tools)})


def llm(*calls: str, reply: str = "all done") -> dict[str, Any]:
    return layer(
        "llm",
        "llm.test",
        {
            "call_tools": list(calls),
            "reply": reply,
            "tool_args": {"lookup_order": {"order_id": "o-7"}},
        },
    )


def test_calls_in_one_turn_pause_the_run_once_and_their_results_resume_it(api: Api) -> None:
    paused = api.run_to_end(tool_run(external(LOOKUP, REFUND), llm=llm("lookup_order", "refund")))

    assert paused["status"] == "paused", paused
    calls = paused["deferred_tool_calls"]
    assert [(c["tool_name"], c["kind"], c["metadata"]) for c in calls] == [
        ("lookup_order", "call", {"layer_type": "tools.external"}),
        ("refund", "call", {"layer_type": "tools.external"}),
    ]
    assert calls[0]["args"] == {"order_id": "o-7"}
    assert [e["tool_name"] for e in events_of(api.events(paused["id"]), "tool_call")] == [
        "lookup_order",
        "refund",
    ]

    results = {
        calls[0]["tool_call_id"]: {"status": "shipped", "items": 2},
        calls[1]["tool_call_id"]: "refunded",
    }
    done = api.run_to_end(
        tool_run(
            external(LOOKUP, REFUND),
            llm=llm(),
            snapshot=paused["session_snapshot"],
        )
        | {"deferred_tool_results": {"calls": results}}
    )

    assert done["status"] == "succeeded", done
    assert done["output"] == "all done"
    returned = {part["tool_name"]: part["content"] for part in history_tool_returns(done)}
    assert returned == {"lookup_order": {"status": "shipped", "items": 2}, "refund": "refunded"}
    outcomes = [e["outcome"] for e in events_of(api.events(done["id"]), "tool_result")]
    assert outcomes == ["success", "success"]


@pytest.mark.parametrize(
    ("tools", "code", "field"),
    [
        pytest.param([{"name": "has space"}], "invalid_tool_name", "tools.0.name", id="bad-name"),
        pytest.param([LOOKUP, LOOKUP], "duplicate_tool_name", "tools", id="duplicate"),
        pytest.param(
            [{"name": "a", "parameters": {"type": "array"}}],
            "invalid_tool_parameters",
            "tools.0.parameters",
            id="not-an-object",
        ),
        pytest.param(
            [
                {
                    "name": "a",
                    "parameters": {
                        "type": "object",
                        "properties": {"x": {"type": "string", "pattern": "(a)\\1"}},
                    },
                }
            ],
            "unsupported_pattern",
            "tools.0.parameters",
            id="backreference",
        ),
    ],
)
def test_bad_external_tool_definitions_are_rejected_with_precise_codes(
    api: Api, tools: list[dict[str, Any]], code: str, field: str
) -> None:
    response = api.post_run(tool_run(external(*tools)))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["details"]["layer"] == "engine"
    assert error["details"]["field"].startswith(f"composition.layers.config.{field}")
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


def test_an_empty_tool_list_is_an_invalid_config(api: Api) -> None:
    response = api.post_run(tool_run(external()))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_layer_config"
