"""The demo page when things go wrong, in a real headless Chromium against the real server:
error answers shown as text, the model unavailable, the CSP, static routes that must not
escape, Swagger UI, and the API-key prompt when auth is on."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Route,
    expect,
)

from tests.integration.conftest import RunningServer, start_server, stop_server
from tests.integration.demo_browser import (
    DIGIT,
    NO_PREDICTION,
    SEVEN,
    VERSION,
    checked_page,
    demo_server,
    draw,
    headless_chromium,
    open_demo,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from demo_server(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from headless_chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from checked_page(browser)


ERROR_BODY = {
    "status": 400,
    "reason": "out_of_range",
    "message": "Expected `float` <= 16.0: every pixel must be a finite number in 0..16",
    "location": "samples[0][3]",
    "request_id": "0123456789abcdef",
}
NOT_READY_BODY = {
    "status": 503,
    "reason": "model_not_ready",
    "message": "model not ready: the locked artifacts were refused (hash_mismatch); "
    "the service log says why",
    "location": None,
    "request_id": "fedcba9876543210",
}


def _fail_with(status: int, body: dict[str, Any]) -> Any:
    def handler(route: Route) -> None:
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    return handler


def _abort(route: Route) -> None:
    route.abort("connectionrefused")


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (
            _fail_with(400, ERROR_BODY),
            [
                "HTTP 400, out_of_range",
                "every pixel must be a finite number in 0..16",
                "samples[0][3]",
            ],
        ),
        (_fail_with(503, NOT_READY_BODY), ["not ready", "HTTP 503", "hash_mismatch"]),
        (_abort, ["Could not reach the service"]),
    ],
    ids=["bad-request", "not-ready", "network-failure"],
)
def test_errors_are_shown_as_text(
    page: Page, server: RunningServer, handler: Any, expected: list[str]
) -> None:
    open_demo(page, server)
    page.route("**/predict", handler)
    draw(page, SEVEN)
    page.get_by_role("button", name="Predict").click()
    alert = page.get_by_role("alert")
    for text in expected:
        expect(alert).to_contain_text(text)
    expect(alert).to_be_visible()
    expect(page.locator("#predicted-label")).to_have_text(NO_PREDICTION)
    expect(page.get_by_role("button", name="Predict")).to_be_enabled()

    page.unroute("**/predict")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#predicted-label")).to_have_text("7")
    expect(page.locator("#alert")).to_be_empty()
    expect(page.locator("#alert")).to_be_hidden()


def test_model_unavailable_on_load_is_shown(page: Page, server: RunningServer) -> None:
    page.route("**/model", _fail_with(503, NOT_READY_BODY))
    page.goto(f"{server.base_url}/")
    expect(page.get_by_role("alert")).to_contain_text("The model is not ready (HTTP 503)")
    expect(page.locator("#model-version")).to_have_text("unavailable")


def test_csp_blocks_inline_script_in_the_browser(browser: Browser, server: RunningServer) -> None:
    """Its own page: the refused script logs a console error, which the ``page`` fixture rejects."""
    context = browser.new_context()
    page = context.new_page()
    open_demo(page, server)
    page.evaluate(
        """() => {
            window.violations = [];
            document.addEventListener('securitypolicyviolation',
                event => window.violations.push(event.violatedDirective));
            const script = document.createElement('script');
            script.textContent = 'window.inlineRan = true;';
            document.body.append(script);
        }"""
    )
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.wait_for_timeout(100)
    assert page.evaluate("() => window.inlineRan === undefined")
    violations = page.evaluate("() => window.violations")
    assert violations
    assert violations[0].startswith("script-src")
    context.close()


@pytest.mark.parametrize(
    "target",
    [
        "/static/demo/../../app.py",
        "/static/demo/..%2f..%2fapp.py",
        "/static/demo/%2e%2e/%2e%2e/app.py",
        "/static/demo/..%2f..%2f..%2fdvc.lock",
    ],
)
def test_static_route_does_not_escape_over_real_http(server: RunningServer, target: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", target)  # sent as-is: http.client does not normalise paths
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    assert answer.status == 404
    assert json.loads(body)["reason"] == "not_found"
    assert b"create_app" not in body
    assert b"stages:" not in body


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    from serving.access.keys import add_key

    directory = tmp_path_factory.mktemp("demo-auth-server")
    keys_file = directory / "keys.jsonl"
    key = add_key(keys_file, "demo-user", ["predict", "explain", "read"])
    # The page is off by default with auth on; published, it asks for a key.
    env = {
        "DIGITS_AUTH": "api-key",
        "DIGITS_API_KEYS_FILE": str(keys_file),
        "DIGITS_DEMO": "on",
    }
    running = start_server(env, workers=1, log_dir=directory)
    yield running, key
    stop_server(running)


def test_with_auth_the_page_asks_for_a_key_and_keeps_it_for_the_tab_only(
    page: Page, auth_server: tuple[RunningServer, str]
) -> None:
    server, key = auth_server
    response = page.goto(f"{server.base_url}/")
    assert response is not None
    assert response.status == 200
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#alert")).to_contain_text("needs an API key (HTTP 401)")
    expect(page.locator("#model-version")).to_have_text("unavailable")
    expect(page.locator("#api-key")).to_be_focused()
    page.locator("#api-key").fill(key)
    page.locator("#api-key-use").click()
    expect(page.locator("#model-version")).to_have_text(VERSION)
    expect(page.locator("#alert")).to_have_text("")
    expect(page.locator("#api-key")).to_have_value("")  # not left in the field
    draw(page, SEVEN)
    page.locator("#predict").click()
    expect(page.locator("#predicted-label")).to_have_text(DIGIT)
    stored = page.evaluate("() => [sessionStorage.getItem('digits-api-key'), localStorage.length]")
    assert stored == [key, 0]
    assert page.context.cookies() == []
    # Another tab (a new browsing context) does not have the key.
    other = page.context.browser.new_context() if page.context.browser else None
    assert other is not None
    fresh = other.new_page()
    fresh.goto(f"{server.base_url}/")
    expect(fresh.locator("body")).to_have_attribute("data-ready", "true")
    assert fresh.evaluate("() => sessionStorage.getItem('digits-api-key')") is None
    other.close()
    page.locator("#api-key-forget").click()
    assert page.evaluate("() => sessionStorage.getItem('digits-api-key')") is None
    page.locator("#predict").click()
    expect(page.locator("#alert")).to_contain_text("HTTP 401")
