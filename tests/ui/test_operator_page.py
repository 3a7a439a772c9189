"""The operator page (`/ui`) in a real headless Chromium against a live server.

An operator signs in with a key, sees runs appear, follows a run's events live (over the
server-sent event stream, read with fetch), cancels a running run, resumes a dropped stream
without gaps, reads sessions and workflow runs, retires a session, and is told what each view
shows when there is nothing to show or when the API refuses a request.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.runs.bodies import chat, layer
from tests.server_fixtures import LiveServer
from tests.sessions.test_sessions import node_run, scope

SCREENSHOTS_VARIABLE = "STRATA_UI_SCREENSHOTS_DIR"
"""Where `test_every_view_renders_for_the_screenshots` also saves its screenshots (the README's
pictures in docs/ are refreshed with `scripts/ui-screenshots`, which sets it)."""


@pytest.fixture
def watched(page: Page) -> Iterator[Page]:
    """The page, failing the test on a script error, a console error (a CSP violation is one)
    or a request that would put the key in a URL."""
    problems: list[str] = []
    urls: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and not _expected_console_error(message.text)
            else None
        ),
    )
    page.on("request", lambda request: urls.append(request.url))
    yield page
    assert problems == []
    assert not [url for url in urls if "sk-strata" in url]


def _expected_console_error(text: str) -> bool:
    # Chromium reports every non-2xx fetch on the console; the tests cause some on purpose.
    return "Failed to load resource" in text


def _post(server: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx2.post(f"{server.base_url}/v1/runs", json=body, headers=server.headers())
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    return run


def _get(server: LiveServer, path: str, **params: Any) -> Any:
    response = httpx2.get(f"{server.base_url}{path}", params=params, headers=server.headers())
    assert response.status_code == 200, response.text
    return response.json()


def _wait(server: LiveServer, run_id: str) -> dict[str, Any]:
    response = httpx2.get(
        f"{server.base_url}/v1/runs/{run_id}/wait",
        params={"timeout_seconds": 30},
        headers=server.headers(),
        timeout=40,
    )
    run: dict[str, Any] = response.json()
    return run


def _tool_run(latency: float) -> dict[str, Any]:
    """A run that calls a tool, then answers: events arrive over `2 * latency` seconds."""
    body = chat("What is the weather in Paris?")
    body["composition"]["layers"].insert(1, layer("tools", "test.tools"))
    body["composition"]["layers"][-1]["config"] = {
        "latency_seconds": latency,
        "call_tools": ["lookup_weather"],
        "tool_args": {"lookup_weather": {"city": "Paris"}},
    }
    return body


def _slow() -> dict[str, Any]:
    return {"latency_seconds": 60}


def _sign_in(page: Page, server: LiveServer, view: str = "") -> None:
    page.goto(f"{server.base_url}/ui{view}")
    page.fill("#api-key", server.key)
    page.click("#login button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()


def test_an_operator_signs_in_sees_a_run_appear_and_watches_its_events_live(
    watched: Page, live_server: LiveServer
) -> None:
    page = watched
    page.goto(f"{live_server.base_url}/ui")
    page.fill("#api-key", "sk-strata-not-a-key")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("This key was refused")
    assert page.evaluate("sessionStorage.length") == 0

    page.fill("#api-key", live_server.key)
    page.click("#login button[type=submit]")
    expect(page.locator("#runs-list")).to_contain_text("No runs yet")
    assert page.evaluate("sessionStorage.getItem('strata.apiKey')") == live_server.key
    assert page.evaluate("localStorage.length") == 0

    run = _post(live_server, _tool_run(latency=3.0))
    row = page.locator(f"tr[data-run-id='{run['id']}']")
    expect(row).to_be_visible()  # the list refreshes by itself
    row.locator("a").click()

    expect(page.locator("#stream-state")).to_have_text("live")
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator("tr[data-type='tool_result']")).to_be_visible()
    # the tool's result is there while the run still runs: it came over the open stream
    assert page.locator("tr[data-type='run_succeeded']").count() == 0
    expect(page.locator("#run-status")).to_have_text("running")

    expect(page.locator("tr[data-type='run_succeeded']")).to_be_visible()
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#stream-state")).to_have_text("ended")
    expect(page.locator("#run-output")).to_contain_text("echo #1")
    expect(page.locator("#run-snapshot")).to_contain_text("schema_version")
    expect(page.locator("#run-timings")).to_contain_text("Finished")
    expect(page.locator("#cancel-run")).to_be_hidden()
    stored = [event["seq"] for event in _get(live_server, f"/v1/runs/{run['id']}/events")["items"]]
    shown = [
        int(seq)
        for seq in page.locator("#event-rows tr").evaluate_all(
            "rows => rows.map(row => row.dataset.seq)"
        )
    ]
    assert shown == stored


def test_cancelling_a_running_run_from_its_page(watched: Page, live_server: LiveServer) -> None:
    page = watched
    run = _post(live_server, chat("slow", llm={"latency_seconds": 30}))
    _sign_in(page, live_server, f"#/runs/{run['id']}")
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator("#run-result")).to_contain_text("No output yet")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-run")

    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("tr[data-type='run_cancelled']")).to_be_visible()
    expect(page.locator("#run-result")).to_contain_text("cancelled")
    expect(page.locator("#cancel-run")).to_be_hidden()
    assert _get(live_server, f"/v1/runs/{run['id']}")["status"] == "cancelled"


def test_a_dropped_event_stream_resumes_after_the_last_event_without_gaps(
    watched: Page, live_server: LiveServer
) -> None:
    page = watched
    run = _post(live_server, _tool_run(latency=1.5))
    path = f"/v1/runs/{run['id']}/events"
    deadline = time.monotonic() + 10
    first = _get(live_server, path, limit=2)["items"]
    while len(first) < 2 and time.monotonic() < deadline:  # until the worker claimed it
        time.sleep(0.05)
        first = _get(live_server, path, limit=2)["items"]
    assert [event["type"] for event in first] == ["run_queued", "run_started"]
    streams: list[Request] = []

    def drop_the_first_stream(route: Route) -> None:
        streams.append(route.request)
        if len(streams) > 1:
            route.continue_()
            return
        # The first connection delivers two events and breaks off: the page must reconnect.
        frames = "".join(
            f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
            for event in first
        )
        route.fulfill(status=200, content_type="text/event-stream", body=frames)

    page.route("**/events/stream*", drop_the_first_stream)
    _sign_in(page, live_server, f"#/runs/{run['id']}")

    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#stream-state")).to_have_text("ended")
    assert len(streams) == 2
    assert streams[1].all_headers().get("last-event-id") == "2"
    assert "authorization" in streams[1].all_headers()
    shown = page.locator("#event-rows tr").evaluate_all("rows => rows.map(r => +r.dataset.seq)")
    stored = [event["seq"] for event in _get(live_server, path)["items"]]
    assert shown == stored == list(range(1, len(stored) + 1))


def test_the_runs_list_pages_and_sends_its_filters_to_the_api(
    watched: Page, live_server: LiveServer
) -> None:
    page = watched
    ids = [_post(live_server, chat(f"run {i}"))["id"] for i in range(27)]
    for run_id in ids:
        _wait(live_server, run_id)
    _sign_in(page, live_server)

    rows = page.locator("#runs-list tr[data-run-id]")
    expect(rows).to_have_count(25)
    assert rows.first.get_attribute("data-run-id") == ids[-1]  # newest first
    page.click("#older-runs")
    expect(rows).to_have_count(2)
    assert [rows.nth(i).get_attribute("data-run-id") for i in range(2)] == [ids[1], ids[0]]
    page.get_by_role("link", name="« Newest").click()
    expect(rows).to_have_count(25)

    page.select_option("#filter-status", "succeeded")
    page.fill("#filter-workflow-run", "wr-7")
    page.fill("#filter-created-after", "2026-01-02T03:04")
    page.fill("#filter-created-before", "2099-01-02T03:04")
    with page.expect_request(lambda r: "/v1/runs?" in r.url and "workflow_run_id" in r.url) as sent:
        page.click("#run-filters button[type=submit]")

    query = httpx2.URL(sent.value.url).params
    assert query.get("status") == "succeeded"
    assert query.get("workflow_run_id") == "wr-7"
    local_to_utc = "value => new Date(value).toISOString()"
    assert query.get("created_after") == page.evaluate(local_to_utc, "2026-01-02T03:04")
    assert query.get("created_before") == page.evaluate(local_to_utc, "2099-01-02T03:04")
    assert "workflow_run_id=wr-7" in page.url
    page.reload()  # the filters live in the URL: a reload keeps them
    expect(page.locator("#filter-status")).to_have_value("succeeded")
    expect(page.locator("#filter-created-after")).to_have_value("2026-01-02T03:04")


def test_sessions_and_a_workflow_run_with_its_runs_and_retiring_a_session(
    watched: Page, live_server: LiveServer
) -> None:
    page = watched
    runs = [
        _wait(live_server, _post(live_server, node_run(question, session=scope("wr-ui")))["id"])
        for question in ("first question", "second question")
    ]
    session_id = runs[0]["session_id"]
    _sign_in(page, live_server, "#/sessions")

    row = page.locator(f"tr[data-session-id='{session_id}']")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("wr-ui")
    row.get_by_role("link", name="wr-ui").click()

    expect(page.locator("h1")).to_contain_text("Workflow run wr-ui")
    expect(page.locator(f"#workflow-sessions tr[data-session-id='{session_id}']")).to_be_visible()
    for run in runs:
        expect(page.locator(f"#workflow-runs tr[data-run-id='{run['id']}']")).to_be_visible()

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#workflow-sessions tr[data-session-id='{session_id}'] button.retire").click()
    expect(page.locator("#workflow-notice")).to_contain_text("cleaned")
    expect(page.locator(f"#workflow-sessions tr[data-session-id='{session_id}']")).to_contain_text(
        "cleaned"
    )
    assert _get(live_server, f"/v1/sessions/{session_id}")["status"] == "cleaned"


def test_every_view_says_what_it_shows_when_there_is_nothing_or_the_api_refuses(
    watched: Page, live_server: LiveServer
) -> None:
    page = watched
    _sign_in(page, live_server)
    expect(page.locator("#runs-list")).to_contain_text("No runs yet")

    page.goto(f"{live_server.base_url}/ui#/sessions")
    expect(page.locator("#sessions-list")).to_contain_text("No runtime sessions yet")

    page.fill("#workflow-run-jump-id", "wr-nothing")
    page.click("#workflow-run-jump button")
    expect(page.locator("#workflow-sessions")).to_contain_text("No sessions in this workflow run")
    expect(page.locator("#workflow-runs")).to_contain_text("No runs in this workflow run")

    page.goto(f"{live_server.base_url}/ui#/runs?status=running")
    expect(page.locator("#runs-list")).to_contain_text("No runs match these filters")

    page.goto(f"{live_server.base_url}/ui#/runs/0190d8c4-0000-7000-8000-000000000000")
    expect(page.locator(".error")).to_contain_text("404 run_not_found")
    expect(page.locator("#no-events")).to_have_text("No events: there is no such run.")

    # A filter the API refuses is shown with the API's code and the field it names.
    page.goto(f"{live_server.base_url}/ui#/runs?status=bogus")
    expect(page.locator("#runs-list .error")).to_contain_text("422 request_invalid")
    expect(page.locator("#runs-list .error")).to_contain_text("query.status")


def test_a_key_revoked_while_signed_in_sends_the_operator_back_to_the_key_form(
    watched: Page, live_server: LiveServer
) -> None:
    page = watched
    _sign_in(page, live_server)
    page.evaluate("sessionStorage.setItem('strata.apiKey', 'sk-strata-revoked')")
    page.goto(f"{live_server.base_url}/ui#/sessions")
    expect(page.locator("#login-error")).to_contain_text("refused the key")
    assert page.evaluate("sessionStorage.length") == 0


def test_every_view_renders_for_the_screenshots(
    watched: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    """One screenshot per view, with data in it; also saved to $STRATA_UI_SCREENSHOTS_DIR."""
    page = watched
    done = [
        _wait(live_server, _post(live_server, node_run(q, session=scope("wr-demo", node)))["id"])
        for q, node in (("Plan the trip", "planner"), ("Book a hotel", "booker"))
    ]
    tools = _tool_run(latency=0)
    tools["session"] = scope("wr-demo", "researcher")
    done.append(_wait(live_server, _post(live_server, tools)["id"]))
    _post(live_server, chat("Write it up", session=scope("wr-demo", "writer"), llm=_slow()))
    _sign_in(page, live_server)
    shots: dict[str, Path] = {}

    def shoot(name: str) -> None:
        shots[name] = tmp_path / f"ui-{name}.png"
        page.screenshot(path=str(shots[name]), full_page=True)

    expect(page.locator("#runs-list tr[data-run-id]")).to_have_count(len(done) + 1)
    expect(page.locator("#runs-list")).to_contain_text("running")
    shoot("runs")
    page.goto(f"{live_server.base_url}/ui#/runs/{done[2]['id']}")
    expect(page.locator("#stream-state")).to_have_text("ended")
    shoot("run")
    page.goto(f"{live_server.base_url}/ui#/sessions")
    expect(page.locator("#sessions-list tr[data-session-id]")).to_have_count(4)
    shoot("sessions")
    page.goto(f"{live_server.base_url}/ui#/workflow-runs/wr-demo")
    expect(page.locator("#workflow-sessions tr[data-session-id]")).to_have_count(4)
    expect(page.locator("#workflow-runs tr[data-run-id]")).to_have_count(len(done) + 1)
    shoot("workflow-run")

    for path in shots.values():
        assert path.read_bytes().startswith(b"\x89PNG")
    target = os.environ.get(SCREENSHOTS_VARIABLE)
    if target:
        for path in shots.values():
            shutil.copyfile(path, Path(target) / path.name)
