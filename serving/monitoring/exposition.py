"""The ``/metrics`` page: rendered off the event loop, at most once per interval per worker.

Rendering aggregates every worker's multiprocess files (tens of milliseconds with a few
workers). On the event loop that time would stall every other request of the worker, so
the render runs in a worker thread. Scrapes that arrive while a render is running share
that render instead of starting their own, so N concurrent scrapes cost one render. With
``DIGITS_METRICS_CACHE_SECONDS`` > 0, a page younger than that is served again as well
(default 0: every scrape that finds no render running sees the counters as they are).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

import anyio.to_thread
from litestar import Litestar

from serving.monitoring.metrics import render_latest, sweep_dead_workers

Page = tuple[bytes, str]  # body, content type
APP_STATE_KEY = "metrics_page"


class MetricsPage:
    """One worker's ``/metrics`` renderer with its cached page."""

    def __init__(
        self,
        interval_seconds: float,
        *,
        sweep: bool,
        before_render: Callable[[], None] | None = None,
        render: Callable[[], Page] = render_latest,
    ) -> None:
        self.interval_seconds = interval_seconds
        self._sweep = sweep
        self._before_render = before_render
        self._render = render
        self._page: Page | None = None
        self._rendered_at = 0.0
        self._inflight: asyncio.Future[Page] | None = None

    def _fresh(self) -> Page | None:
        if self._page is not None and time.monotonic() - self._rendered_at < self.interval_seconds:
            return self._page
        return None

    async def page(self) -> Page:
        """The page: the cached one while fresh; else the render in progress, if any, or a
        new render in a worker thread."""
        cached = self._fresh()
        if cached is not None:
            return cached
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._render_once())
        return await asyncio.shield(self._inflight)  # one caller's cancel spares the rest

    async def _render_once(self) -> Page:
        try:
            started = time.monotonic()
            if self._before_render is not None:
                self._before_render()  # on the loop: it reads state the loop mutates
            page = await anyio.to_thread.run_sync(self._render_in_thread)
            self._page, self._rendered_at = page, started
            return page
        finally:
            self._inflight = None

    def _render_in_thread(self) -> Page:
        if self._sweep:
            sweep_dead_workers()
        return self._render()


def metrics_page_of(app: Litestar) -> MetricsPage:
    """The renderer an app was composed with (``app.state.metrics_page``)."""
    return cast(MetricsPage, app.state[APP_STATE_KEY])
