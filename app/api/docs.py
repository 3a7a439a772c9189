"""API documentation pages that work offline: `/docs` (Swagger UI) and `/redoc` (ReDoc).

FastAPI's default pages load their JavaScript, CSS, favicon and (ReDoc) Google fonts from public
CDNs, so they stay blank without internet and tell third parties who reads the docs. Here both
pages load only files shipped inside the `app` package (`app/api/static/`, served at `/static`):
pinned copies of the npm packages `swagger-ui-dist` and `redoc`, refreshed by
`scripts/vendor-docs-assets`, which records versions, licenses and checksums in
`static/VENDORED.json`.

Invariants:
- every URL a page references is relative to this server (`root_path` respected);
- Swagger UI's validator badge is off (`validatorUrl: null`): it would send the spec to
  validator.swagger.io; ReDoc gets no Google fonts;
- each page carries a Content-Security-Policy that limits every fetch to this origin (plus
  `data:` images and fonts, and `blob:` workers), so the browser itself refuses what a bundled
  library might still try to load from elsewhere (ReDoc 2 shows a logo from its CDN in the
  sidebar; the policy blocks it and ReDoc hides the broken image).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.api.roles import Public

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Files served at `/static`; shipped as package data (see pyproject.toml)."""

STATIC_PATH = "/static"


def content_security_policy(*, inline: bool) -> str:
    """A policy that keeps every fetch on this origin (plus `data:` images and fonts, and
    `blob:` workers). `inline=True` also allows inline scripts and styles, which the vendored
    documentation pages need; the operator page (`app.api.ui`) runs without them."""
    inline_source = " 'unsafe-inline'" if inline else ""
    return (
        "default-src 'self'; "
        f"script-src 'self'{inline_source}; "
        f"style-src 'self'{inline_source}; "
        "img-src 'self' data:; "
        "font-src 'self' data:; "
        "connect-src 'self'; "
        "worker-src 'self' blob:; "
        "object-src 'none'; "
        "base-uri 'self'; "
        "form-action 'self'; "
        "frame-ancestors 'self'"
    )


# 'unsafe-inline' scripts: both pages start their library with an inline <script>; styles: both
# libraries set inline styles. Everything else may only come from this origin.
CONTENT_SECURITY_POLICY = content_security_policy(inline=True)

_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}


def install_docs(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets; the app must be created with
    `docs_url=None, redoc_url=None` so FastAPI's CDN-based pages do not exist."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse, dependencies=[Public])
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers.update(_HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False, response_class=HTMLResponse, dependencies=[Public])
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PATH}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PATH}/favicon.svg",
            with_google_fonts=False,
        )
        page.headers.update(_HEADERS)
        return page
