"""`app.client.__all__` is the client's public surface, the two clients match, and the pieces
behind them (error bodies, paging, paths) work."""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import SimpleNamespace

import httpx2

import app.client
from app.client import AsyncStrataClient, StrataAPIError, StrataClient, StrataError, _calls
from app.client._common import api_error


def test_the_public_names_are_exactly_the_exported_ones() -> None:
    public = {name for name in vars(app.client) if not name.startswith("_")}
    assert public == set(app.client.__all__)
    assert all(getattr(app.client, name) is not None for name in app.client.__all__)


def test_every_client_error_is_a_strata_error() -> None:
    for name in app.client.__all__:
        value = getattr(app.client, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, StrataError), name


def test_an_error_body_gives_code_message_and_details() -> None:
    body = {"error": {"code": "queue_full", "message": "later", "details": {"queued": 3}}}
    error = api_error(httpx2.Response(429, json=body))
    assert isinstance(error, StrataAPIError)
    assert (error.status_code, error.code, error.message, error.details) == (
        429,
        "queue_full",
        "later",
        {"queued": 3},
    )


def test_a_body_of_another_shape_keeps_the_status_and_text() -> None:
    error = api_error(httpx2.Response(502, text="<html>bad gateway</html>"))
    assert (error.status_code, error.code) == (502, "http_502")
    assert error.message == "<html>bad gateway</html>"
    assert api_error(httpx2.Response(500, json={"error": "boom"})).code == "http_500"


def _surface(cls: type) -> dict[str, list[tuple[str, object, object]]]:
    """Public methods: parameter names, kinds and defaults (annotations differ by design)."""
    return {
        name: [
            (parameter.name, parameter.kind, parameter.default)
            for parameter in inspect.signature(member).parameters.values()
        ]
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_the_blocking_and_async_clients_have_the_same_methods_and_parameters() -> None:
    blocking, asynchronous = _surface(StrataClient), _surface(AsyncStrataClient)
    assert blocking.pop("close") == asynchronous.pop("aclose")
    assert blocking == asynchronous
    for name in asynchronous:
        method = getattr(AsyncStrataClient, name)
        if name.startswith("iter_"):
            assert inspect.isasyncgenfunction(method), name
            assert inspect.isgeneratorfunction(getattr(StrataClient, name)), name
        else:
            assert inspect.iscoroutinefunction(method), name


def test_the_sdk_covers_the_workflow_engine_surface() -> None:
    expected = {
        "create_agent", "get_agent", "list_agents", "iter_agents", "update_agent",
        "archive_agent", "save_version", "list_versions", "iter_versions", "get_version",
        "list_revisions", "iter_revisions", "save_agent_as", "save_agent_to_roster",
        "put_binding", "get_binding", "delete_binding", "list_bindings", "copy_bindings",
        "create_node_run", "list_sessions", "iter_sessions", "get_session", "retire_session",
        "retire_workflow_run", "iter_retire_workflow_run", "create_key", "list_keys",
        "revoke_key",
    }  # fmt: skip
    assert expected <= set(_surface(StrataClient))


def test_importing_the_sdk_loads_neither_fastapi_nor_the_run_machinery() -> None:
    code = (
        "import sys, app.client\n"
        "print(sorted(m for m in ('fastapi', 'pydantic_ai', 'app.api', 'app.layers', "
        "'app.runs.service') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_list_call_continues_after_next_cursor_in_its_query_or_body() -> None:
    listed = _calls.list_agents(None, ["active", "archived"], None, "c1", 5)
    after = listed.next_page(SimpleNamespace(next_cursor="c2"))
    assert after is not None
    assert after.params == (("status", "active"), ("status", "archived"), ("limit", "5"),
                            ("cursor", "c2"))  # fmt: skip
    assert listed.next_page(SimpleNamespace(next_cursor=None)) is None

    retire = _calls.retire_workflow_run("wr-1", 5.0, None, 10)
    following = retire.next_page(SimpleNamespace(next_cursor="c9"))
    assert following is not None
    assert following.json == {"workflow_run_id": "wr-1", "wait_seconds": 5.0, "limit": 10,
                              "cursor": "c9"}  # fmt: skip
    assert following.params == ()


def test_path_segments_are_percent_encoded() -> None:
    call = _calls.get_binding("wf 1", "v/2", "node?x")
    assert call.path == "/v1/workflows/wf%201/versions/v%2F2/nodes/node%3Fx/binding"
