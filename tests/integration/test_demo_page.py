"""The drawing demo page in a real headless Chromium against the real server.

Debian's ``chromium`` is driven by Playwright's sync API (no Playwright browser download).
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Route,
    expect,
    sync_playwright,
)

from tests.integration.conftest import RunningServer, http_get, start_server, stop_server

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip(
        "Debian chromium is not installed (apt-get install chromium); the demo page browser "
        "tests need it",
        allow_module_level=True,
    )


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VERSION = re.compile(r"^[0-9a-f]{12}$")
DIGIT = re.compile(r"^[0-9]$")
MINUS = "\u2212"  # the page prints signed numbers with a real minus sign
NO_PREDICTION = "\u2013"  # en dash placeholder before a prediction
# A "7": top bar left to right, then the diagonal down to the lower middle (pad fractions).
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]
# A "1": one vertical stroke.
ONE = [(0.5, 0.12), (0.5, 0.88)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(workers=1, log_dir=tmp_path_factory.mktemp("demo-server"))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda message: _record_console(message, problems))
    yield opened
    context.close()
    assert problems == []


def _record_console(message: ConsoleMessage, problems: list[str]) -> None:
    expected_failure = "Failed to load resource" in message.text
    if message.type == "error" and not expected_failure:
        problems.append(f"console error: {message.text}")


def open_demo(page: Page, server: RunningServer) -> str:
    """Open ``/``, wait for the model version from /model; return that version."""
    response = page.goto(f"{server.base_url}/")
    assert response is not None
    assert response.status == 200
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    version = page.locator("#model-version")
    expect(version).to_have_text(VERSION)
    return version.inner_text()


def draw(page: Page, points: list[tuple[float, float]], steps: int = 20) -> None:
    """Press the mouse on the pad and move through ``points`` (fractions of the pad), release."""
    box = page.locator("#pad").bounding_box()
    assert box is not None

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        for step in range(1, steps + 1):
            t = step / steps
            page.mouse.move(*at(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))
    page.mouse.up()


def grid_values(page: Page) -> list[int]:
    """The 64 values the page shows in its 8x8 input grid (from the cells' accessible names)."""
    labels = page.locator("#input-grid [role=gridcell]").evaluate_all(
        "cells => cells.map(cell => cell.getAttribute('aria-label'))"
    )
    assert len(labels) == 64
    values = []
    for label in labels:
        match = re.search(r": (\d+) of 16", label)
        assert match is not None, label
        values.append(int(match.group(1)))
    return values


def predict_directly(server: RunningServer, values: list[int]) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        body = json.dumps({"samples": [values]})
        connection.request("POST", "/predict", body, {"content-type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 200
        result: dict[str, Any] = json.loads(answer.read())
        return result
    finally:
        connection.close()


def heatmap_colours(page: Page) -> list[str]:
    colours: list[str] = page.locator("#heatmap .heat-cell").evaluate_all(
        "cells => cells.map(cell => getComputedStyle(cell).backgroundColor)"
    )
    return colours


def model_version(server: RunningServer) -> str:
    status, body = http_get(f"{server.base_url}/model")
    assert status == 200
    return str(json.loads(body)["version"])


@pytest.mark.parametrize(("shape", "expected"), [(SEVEN, 7), (ONE, 1)], ids=["seven", "one"])
def test_draw_predict_and_explain(
    page: Page,
    server: RunningServer,
    tmp_path: Path,
    shape: list[tuple[float, float]],
    expected: int,
) -> None:
    version = open_demo(page, server)
    assert version == model_version(server)
    assert grid_values(page) == [0] * 64

    draw(page, shape)
    expect(page.locator("#pad-placeholder")).to_be_hidden()
    values = grid_values(page)
    assert sum(values) > 0
    assert max(values) <= 16
    columns = [sum(values[row * 8 + col] for row in range(8)) for col in range(8)]
    assert columns[0] == columns[7] == 0  # scaled into the central area, like the data set

    page.get_by_role("button", name="Predict").click()
    label = page.locator("#predicted-label")
    expect(label).to_have_text(DIGIT)
    assert int(label.inner_text()) == expected
    direct = predict_directly(server, values)
    assert direct["labels"] == [expected]
    expect(page.locator("#result-summary")).to_contain_text(f"Predicted digit {expected}")

    bars = page.locator("#probabilities .bar__value").all_inner_texts()
    assert len(bars) == 10
    percentages = [float(text.rstrip("%")) for text in bars]
    assert sum(percentages) == pytest.approx(100.0, abs=0.6)
    assert max(percentages) == percentages[expected]
    assert percentages[expected] == pytest.approx(
        direct["probabilities"][0][expected] * 100, abs=0.06
    )

    colours = heatmap_colours(page)
    assert len(colours) == 64
    assert all(colour.startswith("rgb(") for colour in colours)
    assert len(set(colours)) > 8
    legend = page.locator(".legend__labels").inner_text()
    assert MINUS in legend
    assert "+" in legend
    heat_label = page.locator("#heatmap").get_attribute("aria-label")
    assert heat_label is not None
    assert "Strongest push towards" in heat_label

    expect(page.locator("#result-version")).to_contain_text(version)
    expect(page.locator("#model-version")).to_have_text(version)
    expect(page.locator("#alert")).to_be_empty()

    screenshot = tmp_path / f"demo-{expected}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    draw(page, [(0.1, 0.9), (0.2, 0.9)])  # changing the input marks the result as outdated
    expect(page.locator("#result-version")).to_have_text(
        "The input changed: press Predict to update."
    )
    expect(page.locator("#result-card")).to_have_class(re.compile(r"\bis-stale\b"))


@pytest.mark.parametrize("pointer_type", ["pen", "touch"])
def test_pen_and_touch_draw_on_a_phone_sized_page(
    browser: Browser, server: RunningServer, tmp_path: Path, pointer_type: str
) -> None:
    """Pen and finger Pointer Events draw too (dispatched: Playwright cannot drag with them)."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    open_demo(page, server)
    box = page.locator("#pad").bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    common = {"pointerId": 7, "pointerType": pointer_type, "isPrimary": True, "bubbles": True}
    page.dispatch_event(
        "#pad", "pointerdown", {**common, "clientX": x, "clientY": box["y"] + 30, "buttons": 1}
    )
    for step in range(1, 21):
        y = box["y"] + 30 + step * (box["height"] - 60) / 20
        page.dispatch_event("#pad", "pointermove", {**common, "clientX": x, "clientY": y})
    page.dispatch_event("#pad", "pointerup", {**common, "clientX": x, "clientY": y})
    values = grid_values(page)
    # A centred vertical stroke, pen 6 of 32 units wide: half of it (3 of 4 units) in each of
    # columns 4 and 5, i.e. 12/16, with the round caps giving a little less in rows 1 and 8.
    rows = [values[row * 8 : row * 8 + 8] for row in range(8)]
    for row in rows:
        assert row[:3] == row[5:] == [0, 0, 0]
        assert row[3] == row[4]
    assert [row[3] for row in rows[1:7]] == [12] * 6
    assert 6 <= rows[0][3] < 12
    assert rows[0][3] == rows[7][3]
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#predicted-label")).to_have_text("1")
    page.screenshot(path=str(tmp_path / f"demo-phone-{pointer_type}.png"), full_page=True)
    context.close()


def test_swagger_ui_still_renders(page: Page, server: RunningServer) -> None:
    """The demo's CSP is not applied to /docs: Swagger UI's page has its own, which admits
    its inline bootstrap by hash (serving/docs_page.py) and still renders."""
    response = page.goto(f"{server.base_url}/docs")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "'sha256-" in policy
    assert "frame-ancestors 'none'" in policy
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/predict")).to_have_count(1)


def test_keyboard_only(page: Page, server: RunningServer, tmp_path: Path) -> None:
    open_demo(page, server)
    reached: list[str] = []
    for _ in range(15):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => document.activeElement.id || document.activeElement.getAttribute('role')"
        )
        reached.append(str(focused))
        if focused == "gridcell":
            break
    assert reached[-1] == "gridcell", reached
    assert "clear" in reached
    assert "predict" in reached

    focused_cell = page.locator("#input-grid [role=gridcell]:focus")
    outline = focused_cell.evaluate("cell => getComputedStyle(cell).outlineStyle")
    width = focused_cell.evaluate("cell => parseFloat(getComputedStyle(cell).outlineWidth)")
    assert outline != "none"
    assert width >= 2

    # Draw a "1" with the keyboard, two cells wide as the training digits' strokes are:
    # down column index 3, then up column index 4, toggled on with Space/Enter. (A stroke one
    # cell wide is unlike any training "1": the out-of-distribution detector flags it.)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    for row in range(8):
        page.keyboard.press("Space" if row % 2 == 0 else "Enter")
        if row < 7:
            page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    for row in reversed(range(8)):
        page.keyboard.press("Space" if row % 2 == 0 else "Enter")
        if row > 0:
            page.keyboard.press("ArrowUp")
    page.keyboard.press("Minus")  # the last cell (row 0, column index 4) goes 16 -> 15
    values = grid_values(page)
    assert [values[row * 8 + 3] for row in range(8)] == [16] * 8
    assert [values[row * 8 + 4] for row in range(8)] == [15] + [16] * 7
    assert sum(values) == 16 * 15 + 15

    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.id") == "predict"
    page.keyboard.press("Enter")
    expect(page.locator("#predicted-label")).to_have_text("1")
    expect(page.locator("#result-summary")).to_contain_text("Predicted digit 1")
    assert page.locator("#result-summary").get_attribute("aria-live") == "polite"
    expect(page.locator("#heatmap .heat-cell")).to_have_count(64)
    assert len(set(heatmap_colours(page))) > 1
    page.screenshot(path=str(tmp_path / "demo-keyboard.png"), full_page=True)

    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.id") == "clear"
    page.keyboard.press("Space")
    assert grid_values(page) == [0] * 64
    expect(page.locator("#predicted-label")).to_have_text(NO_PREDICTION)


def test_a_non_digit_is_shown_as_not_a_digit(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    open_demo(page, server)
    cells = page.locator("#input-grid [role=gridcell]")
    for index in range(64):  # every cell on: an all-16 square is not a digit
        cells.nth(index).click()
    assert grid_values(page) == [16] * 64
    page.locator("#predict").click()
    expect(page.locator("#predicted-label")).to_have_text("?")
    expect(page.locator("#result-summary")).to_contain_text("does not look like a digit")
    expect(page.locator("#result-card")).to_have_class(re.compile(r"\bis-ood\b"))
    border = page.locator("#result-card").evaluate("card => getComputedStyle(card).borderTopWidth")
    assert float(border.removesuffix("px")) >= 3
    page.screenshot(path=str(tmp_path / "demo-not-a-digit.png"), full_page=True)

    page.locator("#clear").click()
    expect(page.locator("#predicted-label")).to_have_text(NO_PREDICTION)
    expect(page.locator("#result-card")).not_to_have_class(re.compile(r"\bis-ood\b"))


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
    from serving.keys import add_key

    directory = tmp_path_factory.mktemp("demo-auth-server")
    keys_file = directory / "keys.jsonl"
    key = add_key(keys_file, "demo-user", ["predict", "explain", "read"])
    env = {"DIGITS_AUTH": "api-key", "DIGITS_API_KEYS_FILE": str(keys_file)}
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
