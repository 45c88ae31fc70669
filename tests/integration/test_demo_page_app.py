"""The drawing demo page over Litestar's TestClient: CSP, local assets, content types, traversal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from serving.http.docs_page import content_security_policy
from serving.routes.demo import CONTENT_SECURITY_POLICY, DEMO_DIR
from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".html": "text/html",
}
JS_IMPORT = re.compile(r"""\bfrom\s+["']([^"']+)["']""")
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with service_client() as test_client:
        yield test_client


class PageParser(HTMLParser):
    """Collects asset references, scripts and inline styles/handlers of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.inline_attributes: list[str] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href"):
            value = attributes.get(name)
            if value is not None:
                self.references.append(value)
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.inline_attributes.append(f"<{tag} {name}>")
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "style":
            self.inline_attributes.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    return parser


def test_page_is_html_with_a_strict_csp(client: TestClient[Any]) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = {part.split()[0]: part.split()[1:] for part in csp.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<canvas" in page.text
    assert 'role="grid"' in page.text
    assert 'role="alert"' in page.text


def test_page_has_no_inline_script_or_style(client: TestClient[Any]) -> None:
    parser = parse_page(client.get("/").text)
    assert parser.scripts == [{"type": "module", "src": "/static/demo/app.js"}]
    assert parser.script_text == ""
    assert parser.inline_attributes == []


def test_page_references_only_local_assets_with_correct_types(client: TestClient[Any]) -> None:
    parser = parse_page(client.get("/").text)
    assets = [ref for ref in parser.references if ref.startswith("/static/")]
    assert {"/static/demo/app.js", "/static/demo/demo.css", "/static/demo/favicon.svg"} <= set(
        assets
    )
    for reference in parser.references:
        assert reference.startswith(("/static/demo/", "/docs", "#")), reference
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        expected = CONTENT_TYPES[Path(asset).suffix]
        assert answer.headers["content-type"].startswith(expected), asset
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_js_modules_import_only_local_served_modules(client: TestClient[Any]) -> None:
    modules = sorted(DEMO_DIR.glob("*.js"))
    assert {path.name for path in modules} >= {"app.js", "api.js", "downsample.js"}
    for module in modules:
        for target in JS_IMPORT.findall(module.read_text(encoding="utf-8")):
            assert re.fullmatch(r"\./[a-z]+\.js", target), (module.name, target)
            answer = client.get(f"/static/demo/{target.removeprefix('./')}")
            assert answer.status_code == 200, target
            assert answer.headers["content-type"].startswith("text/javascript")


def test_no_external_urls_in_any_demo_file() -> None:
    files = sorted(path for path in DEMO_DIR.rglob("*") if path.is_file())
    assert {path.suffix for path in files} >= {".html", ".js", ".css"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".svg":
            text = text.replace(SVG_NAMESPACE, "")
        for forbidden in ("http://", "https://", "//cdn", "@import", "url("):
            assert forbidden not in text, (path.name, forbidden)


@pytest.mark.parametrize(
    "path",
    [
        "/static/demo/..%2f..%2fapp.py",
        "/static/demo/..%2F..%2Fdemo.py",
        "/static/demo/%2e%2e/%2e%2e/app.py",
        "/static/demo/%2e%2e%2f%2e%2e%2fapp.py",
        "/static/demo/..%5c..%5capp.py",
        "/static/demo/missing.js",
    ],
)
def test_static_route_does_not_escape_its_directory(client: TestClient[Any], path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.json()["reason"] == "not_found"
    assert "create_app" not in answer.text
    assert "demo_router" not in answer.text


def test_encoded_dot_segments_are_resolved_inside_the_directory(client: TestClient[Any]) -> None:
    """Control for the traversal test: %2f is decoded and ``..`` resolved, then contained."""
    answer = client.get("/static/demo/..%2fdemo%2fapp.js")
    assert answer.status_code == 200
    assert answer.text == (DEMO_DIR / "app.js").read_text(encoding="utf-8")


def test_swagger_ui_keeps_working_without_the_demo_csp(client: TestClient[Any]) -> None:
    """The demo page's strict CSP would break Swagger UI's inline blocks: /docs carries its
    own policy instead (serving/http/docs_page.py: 'self' plus the hash of each inline block)."""
    docs = client.get("/docs")
    assert docs.status_code == 200
    policy = docs.headers["content-security-policy"]
    assert policy != CONTENT_SECURITY_POLICY
    assert policy == content_security_policy(docs.content)
    assert "frame-ancestors 'none'" in policy
    assert "content-security-policy" not in client.get("/static/swagger-ui/swagger-ui.css").headers
    assert "content-security-policy" not in client.get("/ready").headers


def test_page_is_outside_the_openapi_schema(client: TestClient[Any]) -> None:
    paths = client.get("/docs/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/static")]


def test_metrics_label_the_page_and_assets_by_template(client: TestClient[Any]) -> None:
    client.get("/")
    client.get("/static/demo/app.js")
    client.get("/static/demo/nope.js")
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/",status="200"}' in text
    assert 'route="/static/demo/{file_path}",status="200"' in text
    assert 'route="/static/demo/{file_path}",status="404"' in text
    assert "app.js" not in text
    assert "nope.js" not in text


def test_page_says_whether_feedback_is_served(client: TestClient[Any], tmp_path: Path) -> None:
    """The page's digits-feedback meta tag follows the route table (DIGITS_FEEDBACK)."""
    meta = re.compile(r'<meta name="digits-feedback" content="([a-z]+)">')
    assert meta.findall(client.get("/").text) == ["off"]
    assert client.options("/feedback").status_code == 404
    with service_client(feedback="on", decision_log_dir=str(tmp_path / "records")) as on:
        assert meta.findall(on.get("/").text) == ["on"]
        assert on.options("/feedback").status_code == 204
        assert on.get("/").headers["content-security-policy"] == CONTENT_SECURITY_POLICY
