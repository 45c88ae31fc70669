"""Swagger UI at /docs renders in a real headless Chromium with no request leaving loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium missing (apt-get install chromium)")
def test_swagger_ui_renders_offline(serve: Callable[..., RunningServer]) -> None:
    server = serve(workers=1)
    outside: list[str] = []
    page_errors: list[str] = []
    console_errors: list[str] = []

    def guard(route: Route) -> None:
        host = urlparse(route.request.url).hostname
        if host in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:  # an air-gapped user would not reach it either
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            # A CSP violation (an inline block the policy does not admit) is a console error.
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.route("**/*", guard)
            answer = page.goto(f"{server.base_url}/docs")
            assert answer is not None
            policy = answer.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy
            assert "'unsafe-inline'" not in policy
            operation = page.locator("#operations-default-PredictPredict")
            expect(operation).to_be_visible(timeout=15_000)
            operation.locator(".opblock-summary").click()
            expect(page.get_by_text("One flat 64-pixel sample").first).to_be_attached(
                timeout=15_000
            )
            expect(page.locator(".opblock-summary-path", has_text="/explain")).to_be_visible()
        finally:
            browser.close()
    assert outside == []
    assert page_errors == []
    assert console_errors == []
