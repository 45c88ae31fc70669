"""The demo page in a real headless Chromium against the real server: the bodies of the server,
browser and page fixtures and the page helpers shared by test_demo_page_drawing.py and
test_demo_page_errors.py.

Debian's ``chromium`` is driven by Playwright's sync API (no Playwright browser download).
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests.integration.conftest import RunningServer, http_get, start_server, stop_server

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


def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The real 1-worker server (a module fixture: ``yield from demo_server(...)``)."""
    running = start_server(workers=1, log_dir=tmp_path_factory.mktemp("demo-server"))
    yield running
    stop_server(running)


def headless_chromium() -> Iterator[Browser]:
    """Debian's Chromium via Playwright (a module fixture: ``yield from headless_chromium()``)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def checked_page(browser: Browser) -> Iterator[Page]:
    """A fresh page that fails the test on any page or console error (a fixture:
    ``yield from checked_page(browser)``)."""
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
