"""The operator page: `/ui`, a static page whose script reads everything from the `/v1` API.

The page holds no data, so the route is public; the script asks for an API key and keeps it in
`sessionStorage` (gone when the tab closes), sends it only as `Authorization: Bearer`, never in a
URL, and never logs it. Views (runs with filters and paging, a run with its events live,
sessions, a workflow run) are addressed by the URL fragment (`/ui#/runs/<id>`), so one route
serves them all and a reload keeps the view.

Invariants:
- the page and its assets (`static/ui/app.js`, `static/ui/app.css`) are served by Strata; every
  URL they use is relative to the page, so a `root_path` prefix works unchanged;
- the page carries the documentation pages' Content-Security-Policy without `'unsafe-inline'`:
  scripts and styles only from this origin (`app.api.docs.content_security_policy`), and the
  script builds the page with DOM calls and `textContent`, never HTML strings, so API data cannot
  inject markup.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from app.api.docs import content_security_policy
from app.api.roles import Public

UI_PAGE = Path(__file__).resolve().parent / "ui.html"
"""The page's HTML (package data, see pyproject.toml)."""

UI_CONTENT_SECURITY_POLICY = content_security_policy(inline=False)


@cache
def _page() -> str:
    return UI_PAGE.read_text(encoding="utf-8")


def install_ui(app: FastAPI) -> None:
    """Serve `/ui`; its assets come from the `/static` mount (`app.api.docs.install_docs`)."""

    @app.get("/ui", include_in_schema=False, response_class=HTMLResponse, dependencies=[Public])
    async def operator_ui() -> HTMLResponse:
        return HTMLResponse(
            _page(),
            headers={
                "Content-Security-Policy": UI_CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache",
                "Referrer-Policy": "no-referrer",
            },
        )
