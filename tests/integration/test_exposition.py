"""The /metrics page renders in a worker thread, concurrent scrapes share one render, and
with DIGITS_METRICS_CACHE_SECONDS a fresh page is reused (issue 23, finding 3)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving.monitoring.exposition import MetricsPage, Page
from serving.settings import SettingsError, load_settings
from tests.integration.asgi import service_client


class SlowRender:
    """A render that blocks until released and records the thread it ran in."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[int] = []
        self.calls = 0

    def __call__(self) -> Page:
        self.threads.append(threading.get_ident())
        self.calls += 1
        assert self.release.wait(10)
        return f"page {self.calls}\n".encode(), "text/plain"


def test_the_render_runs_off_the_event_loop_and_concurrent_scrapes_share_it() -> None:
    render = SlowRender()
    page = MetricsPage(0.0, sweep=False, render=render)

    async def scrape_while_blocked() -> tuple[list[Page], int, bool]:
        loop_thread = threading.get_ident()
        scrapes = [asyncio.ensure_future(page.page()) for _ in range(4)]
        await asyncio.sleep(0.05)
        # The render is blocked in its thread, and the loop still runs other work.
        loop_alive = await asyncio.wait_for(asyncio.sleep(0, result=True), 1)
        render.release.set()
        return list(await asyncio.gather(*scrapes)), loop_thread, loop_alive

    pages, loop_thread, loop_alive = asyncio.run(scrape_while_blocked())
    assert loop_alive
    assert render.calls == 1, "four concurrent scrapes must share one render"
    assert pages == [(b"page 1\n", "text/plain")] * 4
    assert render.threads
    assert render.threads[0] != loop_thread


def test_without_a_cache_interval_each_later_scrape_renders_anew() -> None:
    render = SlowRender()
    render.release.set()
    page = MetricsPage(0.0, sweep=False, render=render)

    async def two_scrapes() -> list[Page]:
        return [await page.page(), await page.page()]

    assert asyncio.run(two_scrapes()) == [(b"page 1\n", "text/plain"), (b"page 2\n", "text/plain")]


def test_a_fresh_page_is_reused_for_the_cache_interval() -> None:
    with service_client(metrics_cache_seconds=60.0) as client:
        first = client.get("/metrics")
        for _ in range(3):
            assert client.get("/health").status_code == 200
        second = client.get("/metrics")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content  # the /health answers are not in it yet
    with service_client() as client:
        first = client.get("/metrics")
        assert client.get("/health").status_code == 200
        second = client.get("/metrics")
    assert first.content != second.content


@pytest.mark.parametrize("value", ["-1", "61", "soon"])
def test_an_unusable_cache_interval_is_refused_by_name(value: str) -> None:
    with pytest.raises(SettingsError, match="DIGITS_METRICS_CACHE_SECONDS"):
        load_settings({"DIGITS_METRICS_CACHE_SECONDS": value})


def test_metrics_need_the_read_scope_whenever_auth_is_on_unless_opted_out() -> None:
    assert not load_settings({}).metrics_need_read
    assert load_settings({"DIGITS_AUTH": "api-key"}).metrics_need_read
    assert not load_settings(
        {"DIGITS_AUTH": "api-key", "DIGITS_METRICS_AUTH": "false"}
    ).metrics_need_read
    with pytest.raises(SettingsError, match="DIGITS_METRICS_AUTH"):
        load_settings({"DIGITS_METRICS_AUTH": "true"})
