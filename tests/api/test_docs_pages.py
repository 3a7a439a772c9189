"""Every HTML page Strata serves works offline: nothing it loads comes from another host.

The crawl discovers pages from the application's routes (every GET route without path
parameters whose answer is HTML, HTML files in mounted static directories, and same-origin
links between pages), so a page added later (an operator UI) is checked without editing this
file. For each page it checks that every URL the page references (attributes such as `src`,
`href`, `spec-url`, CSS `url()`, `@import`, JS `import`/`fetch`/`url:`) belongs to the server,
that those assets answer 200 with the right content type, that the page's Content-Security-Policy
keeps the browser on this origin, and that the served JavaScript and CSS fetch nothing from
another host at runtime in an obvious way, beyond the known references listed below with the
reason each is harmless.
"""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.api.docs import STATIC_DIR
from app.config import Settings
from app.main import create_app
from tests.api_fixtures import Api

ORIGIN = "http://testserver"

# References inside the vendored libraries that this crawl finds, and why each is harmless. A
# refreshed library that references anything else from another host fails the test: review it,
# neutralise it (a page parameter, the CSP), then list it here with the reason.
KNOWN_EXTERNAL_REFERENCES = {
    "https://validator.swagger.io/validator": "Swagger UI's default validator badge; /docs "
    "sets validatorUrl: null (asserted below) and the CSP allows no other host",
    "https://cdn.redoc.ly/redoc/logo-mini.svg": "ReDoc's sidebar logo; the CSP's img-src "
    "blocks it (asserted below) and ReDoc hides the image when it fails",
    "https://redocly.com/redoc/": "an <a href> the reader may click; nothing is loaded",
    "https://github.com/mermade/oas-kit": "a string ReDoc writes into a converted Swagger 2 "
    "document (`x-origin`); nothing is loaded",
}

# What a browser loads from a reference: attributes naming a resource, CSS url() and @import,
# JS import()/import … from/fetch()/new Worker()/importScripts(), and `url:` in a JS object
# (Swagger UI's configuration).
_ATTRIBUTE = re.compile(
    r"""(?i)\s([\w:-]*(?:src|href|url)|action|poster|data|srcset|formaction|manifest|background)"""
    r"""\s*=\s*(["'])(.*?)\2"""
)
_CSS_URL = re.compile(r"""(?i)url\(\s*["']?([^"')\s]+)""")
_CSS_IMPORT = re.compile(r"""(?i)@import\s+["']([^"']+)""")
_JS_REFERENCE = re.compile(
    r"""(?:\bimport\s*\(|\bfrom|\bfetch\s*\(|\bnew\s+Worker\s*\(|\bimportScripts\s*\(|"""
    r"""\burl\s*:)\s*["'`]([^"'`]+)"""
)
# Anything absolute in a page: a stricter net than the patterns above.
_ABSOLUTE_URL = re.compile(r"""(?i)(?<![\w:])(?:https?:)?//[a-z0-9][a-z0-9.-]*[^\s"'`)<>]*""")
_XML_NAMESPACE = re.compile(r"""(?i)xmlns(?::\w+)?\s*=\s*["']([^"']+)""")
# Obvious runtime fetches in served JavaScript or CSS, loosely matched on purpose.
_ASSET_FETCH = re.compile(
    r"""(?i)(?:src|href|url|action|poster|srcset|@import|import|fetch|worker|importScripts)"""
    r"""\s*[:=(]?\s*\(?\s*["'`]?((?:https?:)?//[a-z0-9][a-z0-9.-]*[^"'`)\s]*)"""
)
_ALWAYS_EXTERNAL = re.compile(r"(?i)fonts\.googleapis\.com|fonts\.gstatic\.com")

# Fetch directives of a Content-Security-Policy and the sources an offline page may allow.
_FETCH_DIRECTIVES = {
    "default-src",
    "script-src",
    "style-src",
    "img-src",
    "font-src",
    "connect-src",
    "worker-src",
    "media-src",
    "frame-src",
    "child-src",
    "manifest-src",
    "object-src",
}
_LOCAL_SOURCES = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}


class _Links(HTMLParser):
    """Tags with the attributes that say what a reference is (`<script src>`, `<link rel>`)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def _tags(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Links()
    parser.feed(html)
    return parser.tags


def _references(html: str) -> set[str]:
    found = {match.group(3) for match in _ATTRIBUTE.finditer(html)}
    for pattern in (_CSS_URL, _CSS_IMPORT, _JS_REFERENCE):
        found.update(match.group(1) for match in pattern.finditer(html))
    return {reference.strip() for reference in found if reference.strip()}


def _is_own(reference: str) -> bool:
    """Relative, or absolute on this server; `data:`/`blob:`/fragments load nothing remote."""
    if reference.startswith(("#", "data:", "blob:", "javascript:")):
        return True
    parts = urlsplit(urljoin(ORIGIN + "/", reference))
    return f"{parts.scheme}://{parts.netloc}" == ORIGIN


def _is_html(response: Any) -> bool:
    return bool(response.headers.get("content-type", "").startswith("text/html"))


def discover_pages(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    """Path → HTML of every page reachable from the app's routes and from other pages."""
    app = client.app
    assert hasattr(app, "routes")
    candidates: list[str] = []
    for route in app.routes:
        if isinstance(route, APIRoute | Route) and "GET" in (route.methods or set()):
            if "{" not in route.path:
                candidates.append(route.path)
            else:
                response_class = getattr(route, "response_class", None)
                is_html = isinstance(response_class, type) and issubclass(
                    response_class, HTMLResponse
                )
                assert not is_html, (
                    f"{route.path} serves HTML but has path parameters: give the crawl an "
                    "example URL for it"
                )
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            directory = Path(str(route.app.directory))
            candidates += [
                f"{route.path}/{file.relative_to(directory).as_posix()}"
                for file in directory.rglob("*.htm*")
            ]
    pages: dict[str, str] = {}
    queue = list(candidates)
    while queue:
        path = queue.pop()
        if path in pages:
            continue
        response = client.get(path, headers=headers)
        if not _is_html(response):
            continue
        assert response.status_code == 200, (path, response.status_code)
        pages[path] = response.text
        for tag, attrs in _tags(response.text):
            href = attrs.get("href", "")
            if tag == "a" and href and _is_own(href) and not href.startswith("#"):
                queue.append(urlsplit(urljoin(ORIGIN + path, href)).path)
    return pages


@pytest.fixture
def pages(api: Api) -> dict[str, str]:
    return discover_pages(api.client, api.headers())


def test_the_crawl_finds_the_api_docs_pages_and_the_operator_page(pages: dict[str, str]) -> None:
    assert {"/docs", "/redoc", "/ui"} <= set(pages)


def test_the_operator_page_runs_no_inline_script_or_style(api: Api, pages: dict[str, str]) -> None:
    policy = api.client.get("/ui").headers["content-security-policy"]
    directives = {name: sources for name, *sources in (p.split() for p in policy.split(";"))}
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert "<script>" not in pages["/ui"] and "style=" not in pages["/ui"]


def test_no_page_references_anything_from_another_host(pages: dict[str, str]) -> None:
    foreign: list[tuple[str, str]] = []
    for path, html in pages.items():
        namespaces = {match.group(1) for match in _XML_NAMESPACE.finditer(html)}
        references = _references(html)
        references |= {m.group(0) for m in _ABSOLUTE_URL.finditer(html)} - namespaces
        foreign += [(path, reference) for reference in references if not _is_own(reference)]
    assert foreign == []


def test_every_asset_a_page_loads_answers_with_its_content_type(
    api: Api, pages: dict[str, str]
) -> None:
    checked: dict[str, str] = {}
    for path, html in pages.items():
        expected: dict[str, str] = {}
        for tag, attrs in _tags(html):
            rel = attrs.get("rel", "").lower()
            if tag == "script" and attrs.get("src"):
                expected[attrs["src"]] = "javascript"
            elif tag == "link" and "stylesheet" in rel:
                expected[attrs["href"]] = "text/css"
            elif tag == "link" and "icon" in rel:
                expected[attrs["href"]] = "image/"
            elif tag == "img" and attrs.get("src"):
                expected[attrs["src"]] = "image/"
        expected.update(
            {ref: "application/json" for ref in _references(html) if ref.endswith(".json")}
        )
        assert expected, f"{path} loads nothing?"
        for reference, content_type in expected.items():
            url = urljoin(ORIGIN + path, reference)
            response = api.client.get(url)
            assert response.status_code == 200, (path, reference)
            assert content_type in response.headers["content-type"], (reference, response.headers)
            checked[urlsplit(url).path] = content_type
    assert {
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/swagger-ui/swagger-ui.css",
        "/static/redoc/redoc.standalone.js",
        "/static/favicon.svg",
        "/openapi.json",
        "/static/ui/app.js",
        "/static/ui/app.css",
    } <= set(checked)


def test_every_page_keeps_the_browser_on_this_origin(api: Api, pages: dict[str, str]) -> None:
    for path in pages:
        policy = api.client.get(path).headers.get("content-security-policy")
        assert policy, f"{path} has no Content-Security-Policy"
        directives = {
            name: sources
            for name, *sources in (part.split() for part in policy.split(";") if part.strip())
        }
        assert "default-src" in directives, path
        for name, sources in directives.items():
            if name in _FETCH_DIRECTIVES:
                assert set(sources) <= _LOCAL_SOURCES, (path, name, sources)
        # the known ReDoc logo is blocked: images only from here or inline data
        assert set(directives.get("img-src", directives["default-src"])) <= {"'self'", "data:"}


def test_served_scripts_and_styles_fetch_nothing_from_another_host(
    api: Api, pages: dict[str, str]
) -> None:
    found: dict[str, set[str]] = {}
    for path, html in pages.items():
        for tag, attrs in _tags(html):
            reference = attrs.get("src") if tag == "script" else attrs.get("href")
            if tag not in ("script", "link") or not reference or not _is_own(reference):
                continue
            body = api.client.get(urljoin(ORIGIN + path, reference)).text
            assert not _ALWAYS_EXTERNAL.search(body), reference
            external = {m.group(1) for m in _ASSET_FETCH.finditer(body)} - {""}
            found[reference] = {url for url in external if not _is_own(url)}
    unknown = {ref: urls - set(KNOWN_EXTERNAL_REFERENCES) for ref, urls in found.items()}
    assert {ref: urls for ref, urls in unknown.items() if urls} == {}
    assert "/static/redoc/redoc.standalone.js" in found


def test_swagger_ui_has_no_validator_badge_and_redoc_no_google_fonts(
    pages: dict[str, str],
) -> None:
    assert '"validatorUrl": null' in pages["/docs"]
    assert "fonts.googleapis" not in pages["/redoc"]
    assert "<redoc spec-url=" in pages["/redoc"]


def test_pages_and_assets_respect_the_root_path() -> None:
    app = create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:"))  # type: ignore[call-arg]
    client = TestClient(app, root_path="/strata")

    docs = client.get("/docs").text
    redoc = client.get("/redoc").text
    ui = client.get("/ui").text

    assert 'src="/strata/static/swagger-ui/swagger-ui-bundle.js"' in docs
    assert "url: '/strata/openapi.json'" in docs
    assert 'src="/strata/static/redoc/redoc.standalone.js"' in redoc
    # the operator page's references are relative: below /strata/ui they resolve under /strata
    assert 'src="static/ui/app.js"' in ui
    assert urljoin("http://testserver/strata/ui", "static/ui/app.js").endswith(
        "/strata/static/ui/app.js"
    )


def test_the_vendored_files_are_the_recorded_releases() -> None:
    """VENDORED.json (written by scripts/vendor-docs-assets) names every vendored file with
    its checksum: a hand edit or a half-finished refresh fails here."""
    record = json.loads((STATIC_DIR / "VENDORED.json").read_text())
    listed: dict[str, str] = {}
    for name, package in record["packages"].items():
        assert package["version"] and package["license"] and package["integrity"], name
        listed.update(package["files"])
        directory = next(iter(package["files"])).split("/")[0]
        assert any(path.endswith("/LICENSE") for path in package["files"]), name
        on_disk = {
            file.relative_to(STATIC_DIR).as_posix()
            for file in (STATIC_DIR / directory).rglob("*")
            if file.is_file()
        }
        assert on_disk == {path for path in package["files"] if path.startswith(directory)}
    for path, sha256 in listed.items():
        assert hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest() == sha256, path
    assert record["packages"]["redoc"]["version"].startswith("2.")
