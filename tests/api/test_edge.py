"""Strings no database can store, and numbers no column can hold, are 422 on both databases.

Before any handler runs: nothing is stored, and SQLite and PostgreSQL answer the same.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.agents.support import agent_body, create_agent, soul
from tests.api_fixtures import Api
from tests.runs.bodies import chat, layer

NUL = "\u0000"
LONE = "\ud800"
SCOPE = {
    "app_id": "app",
    "workflow_id": "wf",
    "workflow_run_id": "wr",
    "node_id": "n",
    "binding_id": "b",
    "agent_id": "a",
    "agent_config_snapshot_id": "s",
}


def _raw_post(api: Api, path: str, content: bytes, **headers: str) -> Any:
    return api.client.post(
        path,
        content=content,
        headers={**api.headers(), "Content-Type": "application/json", **headers},
    )


def _json_bytes(body: Any) -> bytes:
    # json.dumps escapes NUL as \u0000 and a lone surrogate as \ud800, like any JSON encoder
    return json.dumps(body).encode()


def _assert_invalid_characters(response: Any, location: list[Any]) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_characters"
    assert error["details"]["location"] == location


def _no_runs(api: Api) -> None:
    assert api.client.get("/v1/runs", headers=api.headers()).json()["items"] == []


RUN_CASES = [
    ("prompt", chat(f"hi{NUL}"), ["body", "composition", "layers", 0, "config", "user"]),
    ("metadata key", chat(metadata={f"k{NUL}": 1}), ["body", "metadata", "k\\u0000"]),
    ("metadata value", chat(metadata={"k": [f"v{NUL}"]}), ["body", "metadata", "k", 0]),
    (
        "layer metadata",
        {"composition": {"layers": [layer("llm", "llm.test", metadata={"m": NUL})]}},
        ["body", "composition", "layers", 0, "metadata", "m"],
    ),
    ("idempotency key", chat(idempotency_key=f"key{NUL}"), ["body", "idempotency_key"]),
    (
        "session scope id",
        chat(session={**SCOPE, "workflow_run_id": f"wr{NUL}"}),
        ["body", "session", "workflow_run_id"],
    ),
    (
        "lone surrogate in a prompt",
        chat(f"hi{LONE}"),
        ["body", "composition", "layers", 0, "config", "user"],
    ),
    ("lone surrogate in metadata", chat(metadata={"k": LONE}), ["body", "metadata", "k"]),
    ("lone surrogate in a key", chat(metadata={LONE: 1}), ["body", "metadata", "\\ud800"]),
]


@pytest.mark.parametrize(
    ("body", "location"), [pytest.param(b, loc, id=title) for title, b, loc in RUN_CASES]
)
def test_nul_and_lone_surrogates_in_a_run_are_422(
    api: Api, body: dict[str, Any], location: list[Any]
) -> None:
    response = _raw_post(api, "/v1/runs", _json_bytes(body))

    _assert_invalid_characters(response, location)
    _no_runs(api)


def test_a_nul_in_the_idempotency_key_header_is_422(api: Api) -> None:
    response = _raw_post(api, "/v1/runs", _json_bytes(chat()), **{"Idempotency-Key": f"k{NUL}"})

    _assert_invalid_characters(response, ["header", "idempotency-key"])
    _no_runs(api)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            b'{"composition": {"layers": []}, "metadata": {"k": "\xff"}}', id="invalid-utf8"
        ),
        pytest.param(
            b'{"composition": {"layers": []}, "metadata": {"k": "\xed\xa0\x80"}}',
            id="surrogate-encoded-as-utf8",
        ),
    ],
)
def test_a_body_that_is_not_utf8_is_422(api: Api, content: bytes) -> None:
    _assert_invalid_characters(_raw_post(api, "/v1/runs", content), ["body"])
    _no_runs(api)


def test_escapes_that_decode_to_storable_text_are_accepted(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(run_worker=False)
    # a surrogate pair (an emoji) and an escaped backslash followed by "u0000" (six characters)
    content = (
        b'{"composition": {"layers": [{"name": "llm", "type": "llm.test"}]},'
        b' "metadata": {"emoji": "\\ud83d\\ude00", "text": "\\\\u0000"}}'
    )

    response = _raw_post(api, "/v1/runs", content)

    assert response.status_code == 202, response.text
    stored = api.client.get(f"/v1/runs/{response.json()['id']}", headers=api.headers()).json()
    assert stored["metadata"] == {"emoji": "\U0001f600", "text": "\\u0000"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="deep-nesting"),
        pytest.param(b'{"metadata": {"n": ' + b"9" * 5000 + b"}}", "digits", id="huge-integer"),
    ],
)
def test_json_that_python_refuses_is_422_request_invalid(
    api: Api, content: bytes, why: str
) -> None:
    response = _raw_post(api, "/v1/runs", content)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "request_invalid"
    assert error["details"]["errors"][0]["type"] == "json_invalid"
    assert why in error["details"]["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/v1/runs", chat(metadata={"n": 2**64}), ["body", "metadata", "n"]),
        ("/v1/runs", chat(metadata={"n": [1, -(2**63) - 1]}), ["body", "metadata", "n", 1]),
        (
            "/v1/agents",
            agent_body(config=soul(tools={"platform_tools": [{"x": {"y": 10**30}}]})),
            ["body", "config", "tools", "platform_tools", 0, "x", "y"],
        ),
    ],
)
def test_integers_beyond_64_bits_anywhere_in_a_body_are_422_not_500(
    api: Api, path: str, body: Any, location: list[Any]
) -> None:
    response = _raw_post(api, path, _json_bytes(body))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "request_invalid"
    assert error["details"]["errors"] == [
        {
            "loc": location,
            "msg": "integers in a request must fit in 64 bits",
            "type": "int_out_of_range",
        }
    ]
    _no_runs(api)
    assert api.client.get("/v1/agents", headers=api.headers()).json()["items"] == []


def test_the_largest_64_bit_integers_are_stored(api: Api) -> None:
    run = api.run_to_end(chat(metadata={"max": 2**64 - 1, "min": -(2**63), "digits": 10**18}))

    assert run["metadata"] == {"max": 2**64 - 1, "min": -(2**63), "digits": 10**18}


def test_nul_in_agent_names_and_configs_is_422(api: Api) -> None:
    named = api.client.post("/v1/agents", json=agent_body(f"a{NUL}b"), headers=api.headers())
    configured = api.client.post(
        "/v1/agents",
        json={**agent_body("ok"), "config": soul(f"be{NUL}careful")},
        headers=api.headers(),
    )

    _assert_invalid_characters(named, ["body", "name"])
    _assert_invalid_characters(configured, ["body", "config", "prompt", "system_prompt"])
    assert api.client.get("/v1/agents", headers=api.headers()).json()["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "location"),
    [
        pytest.param("/v1/agents", {"q": f"a{NUL}zzzz"}, ["query", "q"], id="q"),
        pytest.param(
            "/v1/sessions", {"workflow_run_id": f"w{NUL}"}, ["query", "workflow_run_id"], id="query"
        ),
        pytest.param("/v1/workflows/wf%00/versions/1/bindings", {}, ["path"], id="path-segment"),
    ],
)
def test_nul_in_paths_and_query_parameters_is_422(
    api: Api, path: str, params: dict[str, str], location: list[str]
) -> None:
    response = api.client.get(path, params=params, headers=api.headers())

    _assert_invalid_characters(response, location)


def test_a_search_with_nul_does_not_silently_match_a_prefix(api: Api) -> None:
    create_agent(api, "alpha")

    response = api.client.get("/v1/agents", params={"q": f"a{NUL}zzzz"}, headers=api.headers())

    assert response.status_code == 422


def test_a_nul_in_a_binding_path_stores_nothing(api: Api) -> None:
    agent = create_agent(api)
    path = "/v1/workflows/wf/versions/v%00/nodes/n/binding"
    body = {
        "binding_type": "roster_agent",
        "agent_id": agent["id"],
        "app_id": "app",
        "node_job_config": {"workflow_prompt": "go"},
    }

    response = api.client.put(path, json=body, headers=api.headers())

    _assert_invalid_characters(response, ["path"])
    listed = api.client.get("/v1/workflows/wf/versions/v/bindings", headers=api.headers())
    assert listed.json()["items"] == []


# --- integers out of a column's range -----------------------------------------------------------

INT32_OVER = str(2**31)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/versions/" + INT32_OVER, {}, id="version"),
        pytest.param("/versions", {"before": INT32_OVER}, id="versions-before"),
        pytest.param("/revisions", {"before": INT32_OVER}, id="revisions-before"),
    ],
)
def test_agent_numbers_beyond_int32_are_422(api: Api, path: str, params: dict[str, str]) -> None:
    agent = create_agent(api)

    response = api.client.get(
        f"/v1/agents/{agent['id']}{path}", params=params, headers=api.headers()
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "request_invalid"


@pytest.mark.parametrize("after", [INT32_OVER, str(2**63)])
def test_event_cursors_beyond_the_column_are_422(api: Api, after: str) -> None:
    run = api.run_to_end(chat())

    for path in ("events", "events/stream"):
        response = api.client.get(
            f"/v1/runs/{run['id']}/{path}", params={"after": after}, headers=api.headers()
        )
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["code"] == "request_invalid"


def test_the_largest_event_cursor_is_an_empty_page(api: Api) -> None:
    run = api.run_to_end(chat())

    response = api.client.get(
        f"/v1/runs/{run['id']}/events", params={"after": 2**31 - 1}, headers=api.headers()
    )

    assert response.status_code == 200
    assert response.json()["items"] == []


def test_a_last_event_id_beyond_the_column_is_refused_before_streaming(api: Api) -> None:
    run = api.run_to_end(chat())

    response = api.client.get(
        f"/v1/runs/{run['id']}/events/stream",
        headers={**api.headers(), "Last-Event-ID": str(2**63)},
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "invalid_last_event_id"


# --- body size ---------------------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_is_413(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(max_body_bytes=2048)
    content = json.dumps(chat("x" * 8192)).encode()

    def chunks() -> Any:  # no Content-Length: the body is sent chunked
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    response = api.client.post(
        "/v1/runs", content=chunks(), headers={**api.headers(), "Content-Type": "application/json"}
    )

    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    _no_runs(api)
