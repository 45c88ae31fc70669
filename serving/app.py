"""Composition: the route table, the request chain, error handling and the model lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Receive,
    Scope,
    Send,
)

from serving.http.chain import CHAIN, Step, compose
from serving.http.dispatch import check_fast_handlers, dispatcher
from serving.http.errors import litestar_error_handler
from serving.lineage.loading import load_model
from serving.monitoring.exposition import APP_STATE_KEY, MetricsPage
from serving.monitoring.logs import configure_logging
from serving.monitoring.metrics import mark_process_dead, sweep_dead_workers
from serving.openapi import openapi_config
from serving.openapi_access import document_access
from serving.routes import route_table
from serving.settings import Settings, load_settings
from serving.state import ServiceState, service_of


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Verify and load the dvc.lock-pinned model; a worker drops its live gauges on exit."""
    service = service_of(app)
    if service.worker_process:
        sweep_dead_workers()  # a respawned worker replaces one that may have been killed
    load_model(service)
    try:
        yield
    finally:
        for close in service.closers:
            close()
        service.metrics.model_ready.set(0)
        if service.worker_process:
            mark_process_dead()


class ServiceApp(Litestar):
    """Litestar, entered through the request chain for every HTTP request."""

    chain: ASGIApp

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if scope["type"] == ScopeType.HTTP:
            await self.chain(scope, receive, send)  # type: ignore[arg-type]
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, worker_process: bool = False, steps: Sequence[Step] = CHAIN
) -> ServiceApp:
    """Build the service. The lifespan hook verifies and loads the dvc.lock-pinned model.

    ``worker_process``: this app owns its process (a server worker), so on shutdown it
    removes the process's live-gauge files from the Prometheus multiprocess directory.
    ``steps``: the request chain (:data:`serving.http.chain.CHAIN`).
    """
    service = ServiceState(settings=settings, worker_process=worker_process)
    page = MetricsPage(
        settings.metrics_cache_seconds, sweep=worker_process, before_render=service.before_scrape
    )
    app = ServiceApp(
        route_handlers=route_table(settings),
        lifespan=[lifespan],
        openapi_config=openapi_config(settings),
        exception_handlers={Exception: litestar_error_handler},
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        state=State({"service": service, APP_STATE_KEY: page}),
    )
    document_access(app, settings)
    check_fast_handlers(app)
    app.chain = compose(app, steps, dispatcher(app))
    return app


def app_from_env() -> Litestar:
    """Factory used by the server workers: settings from ``DIGITS_*`` variables."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings, worker_process=True)


__all__ = ["ServiceApp", "app_from_env", "create_app", "load_model"]
