"""The fast dispatch applies a Litestar feature or refuses it: an app in which a FAST handler
would have a feature the fast dispatch skips does not start, and says which
(serving/http/fast_features.py). No pipeline artifact is read: the model loads in the lifespan,
which these apps never enter."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from litestar import Litestar, MediaType, Request, Response, Router, post
from litestar.background_tasks import BackgroundTask
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader, Cookie, ETag, ResponseHeader
from litestar.di import Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.logging.config import BaseLoggingConfig
from litestar.params import QueryParameter
from litestar.plugins import InitPlugin
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, GetLogger

from serving.app import create_app
from serving.http.dispatch import FAST, check_fast_handlers
from serving.http.errors import litestar_error_handler
from serving.http.fast_features import REFUSED, unclassified_settings
from serving.routes import route_table
from serving.routes.native import predict
from serving.settings import Settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit
SETTINGS = Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"))


def passthrough(app: ASGIApp) -> ASGIApp:
    return app


def allow(*args: Any) -> None:
    return None


def keep(response: Response[Any]) -> Response[Any]:
    return response


def answer_value_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return Response(b"{}", status_code=400)


class TracedRequest(Request[Any, Any, Any]):
    """A custom request class (Litestar would build the handler's request with it)."""


class ExceptionLogging(BaseLoggingConfig):
    """Litestar's exception logging, without touching this process's logging setup."""

    log_exceptions = "always"
    traceback_line_limit = -1
    exception_logging_handler = None

    def configure(self) -> GetLogger:
        return lambda name="litestar": logging.getLogger(name)

    @staticmethod
    def set_level(logger: Any, level: int) -> None:
        return None


class OpenTelemetryPlugin(InitPlugin):
    """Stands in for Litestar's OpenTelemetry plugin (not installed), found by its name:
    Litestar wraps its router in the plugin's middleware."""

    def middleware(self, app: ASGIApp) -> ASGIApp:
        return app


# (refused feature, the layer it is set on, the Litestar option that sets it)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("guards", "app", {"guards": [allow]}),
    ("middleware", "router", {"middleware": [passthrough]}),
    ("before_request", "app", {"before_request": allow}),
    ("after_request", "router", {"after_request": keep}),
    ("after_response", "handler", {"after_response": allow}),
    (
        "dependencies",
        "router",
        {"dependencies": {"extra": Provide(lambda: 1, sync_to_thread=False)}},
    ),
    (
        "parameters",
        "app",
        {"parameters": {"page": QueryParameter(name="page", annotation=int, required=False)}},
    ),
    ("request_class", "app", {"request_class": TracedRequest}),
    ("exception_handlers", "handler", {"exception_handlers": {ValueError: answer_value_error}}),
    ("request_max_body_size", "handler", {"request_max_body_size": 1024}),
    ("response_headers", "app", {"response_headers": [ResponseHeader(name="x-extra", value="1")]}),
    ("cache_control", "router", {"cache_control": CacheControlHeader(max_age=60)}),
    ("etag", "handler", {"etag": ETag(value="v1")}),
    ("response_cookies", "router", {"response_cookies": [Cookie(key="seen", value="1")]}),
    ("background", "handler", {"background": BackgroundTask(allow)}),
    ("cache", "handler", {"cache": 60}),
    ("media_type", "handler", {"media_type": MediaType.TEXT}),
    ("status_code", "handler", {"status_code": 201}),
    ("after_exception", "app", {"after_exception": [allow]}),
    ("before_send", "app", {"before_send": [allow]}),
    ("allowed_hosts", "app", {"allowed_hosts": ["localhost"]}),
    ("compression_config", "app", {"compression_config": CompressionConfig(backend="gzip")}),
    ("cors_config", "app", {"cors_config": CORSConfig()}),
    ("csrf_config", "app", {"csrf_config": CSRFConfig(secret="s" * 32)}),
    ("logging_config", "app", {"logging_config": ExceptionLogging()}),
    ("pdb_on_exception", "app", {"pdb_on_exception": True}),
    ("plugins", "app", {"plugins": [OpenTelemetryPlugin()]}),
]


def start(layer: str = "app", options: dict[str, Any] | None = None) -> None:
    """The service's route table and a FAST handler (/fast, /predict's handler), built as
    create_app builds them, with ``options`` on ``layer``; then the start-up check."""
    options = options or {}
    on = {where: options if where == layer else {} for where in ("app", "router", "handler")}
    fast = post("/fast", opt={FAST: True}, **{"status_code": 200, **on["handler"]})(predict)
    routes: list[Any] = [*route_table(SETTINGS), fast]
    if layer == "router":
        routes = [Router(path="/", route_handlers=routes, **options)]
    app = Litestar(
        route_handlers=routes,
        **{
            "exception_handlers": {Exception: litestar_error_handler},
            "request_max_body_size": SETTINGS.max_body_bytes,
            "logging_config": None,
            **on["app"],
        },
    )
    check_fast_handlers(app)


def refused_in(message: str) -> list[str]:
    found = re.search(r"would apply (.+?): remove", message)
    assert found is not None, message
    return found.group(1).split(", ")


@pytest.mark.filterwarnings("ignore::litestar.utils.warnings.LitestarWarning")
@pytest.mark.parametrize(("feature", "layer", "options"), CASES, ids=[case[0] for case in CASES])
def test_a_feature_the_fast_dispatch_skips_stops_start_up(
    feature: str, layer: str, options: dict[str, Any]
) -> None:
    with pytest.raises(ImproperlyConfiguredException) as refused:
        start(layer, options)
    message = refused.value.detail
    assert re.match(rf"\w+ \(/[^)]*\): a {FAST} handler", message), message
    if layer == "handler":
        assert message.startswith("predict (/fast)"), message
    assert feature in refused_in(message)


def test_every_refused_feature_has_a_case() -> None:
    assert sorted(case[0] for case in CASES) == sorted(REFUSED)


def test_the_same_routes_without_a_refused_feature_start() -> None:
    start()
    start("handler", {})
    start("router", {"tags": ["documented"]})  # allowed: the OpenAPI document only


def test_every_litestar_setting_is_allowed_or_refused() -> None:
    assert unclassified_settings() == frozenset()


@pytest.mark.parametrize(
    "settings",
    [
        SETTINGS,
        Settings(lock_file_path=SETTINGS.lock_file_path, docs="off", demo="off"),
        Settings(lock_file_path=SETTINGS.lock_file_path, metrics_auth=False),
    ],
    ids=["defaults", "no-docs-no-demo", "public-metrics"],
)
def test_the_service_starts(settings: Settings) -> None:
    app = create_app(settings)
    fast = [
        route.path
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.opt.get(FAST)
    ]
    assert sorted(fast) == [
        "/explain",
        "/predict",
        "/v2/models/{name:str}/infer",
        "/v2/models/{name:str}/versions/{version:str}/infer",
    ]


def test_litestar_pdb_in_the_environment_stops_the_service_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LITESTAR_PDB=1 makes Litestar debug every exception of its own routes, not FAST ones."""
    monkeypatch.setenv("LITESTAR_PDB", "1")
    with (
        pytest.warns(match="Debugger on exception"),
        pytest.raises(ImproperlyConfiguredException, match="pdb_on_exception"),
    ):
        create_app(SETTINGS)
