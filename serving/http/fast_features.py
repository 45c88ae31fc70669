"""Which Litestar features the fast dispatch applies, and which it refuses at start-up.

A handler marked ``FAST`` (:mod:`serving.http.dispatch`) is called directly at the end of the
request chain, without Litestar's own request handling, so a feature Litestar would apply
to it there (a hook, middleware, a dependency, a response header...) would be skipped
silently. Every setting Litestar offers on an app, router, controller or route handler is
therefore classified here, by name: :data:`ALLOWED`, with why it is fine (the fast dispatch
applies it, or it cannot change a FAST handler's answer), or :data:`REFUSED`, with a probe
that tells whether it is set for a handler at any layer. :func:`refused_features` names the
refused features a FAST handler has; :func:`unclassified_settings` names the settings of the
installed Litestar classified in neither (a new version's), so that start-up fails rather
than skip them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from litestar import Controller, Litestar, Request, Router
from litestar.handlers import HTTPRouteHandler

from serving.http.errors import litestar_error_handler

Probe = Callable[[HTTPRouteHandler, Litestar], object]  # truthy: set for this handler

_DOCUMENT = "the OpenAPI document only"
_ROUTING = "routing: the chain resolves every request with Litestar's own router"
_LIFETIME = "the app's lifetime, not a request's"

ALLOWED: dict[str, str] = {
    "route_handlers": _ROUTING,
    "path": _ROUTING,
    "http_method": _ROUTING,
    "owner": _ROUTING,
    "name": "a name for URL reversal",
    "opt": "read by the chain: FAST itself and each route's access (serving.access)",
    "kwargs": "extra handler keywords, which Litestar puts in opt",
    "sync_to_thread": "a FAST handler is async (checked), never run in a thread",
    "openapi_config": _DOCUMENT,
    "include_in_schema": _DOCUMENT,
    "security": _DOCUMENT + " (the chain enforces each route's declared access)",
    "tags": _DOCUMENT,
    "summary": _DOCUMENT,
    "description": _DOCUMENT,
    "deprecated": _DOCUMENT,
    "operation_class": _DOCUMENT,
    "operation_id": _DOCUMENT,
    "raises": _DOCUMENT,
    "response_description": _DOCUMENT,
    "responses": _DOCUMENT,
    "content_encoding": _DOCUMENT,
    "content_media_type": _DOCUMENT,
    "lifespan": _LIFETIME + " (the app loads the model in it)",
    "on_startup": _LIFETIME,
    "on_shutdown": _LIFETIME,
    "on_app_init": "runs at construction: what it sets is checked here like any setting",
    "state": "app.state, reached through scope['app'], which the fast dispatch sets",
    "stores": "used by features refused here (response cache) or by a handler that asks",
    "event_emitter_backend": "events a handler emits itself (app.emit)",
    "listeners": "events a handler emits itself (app.emit)",
    "debug": (
        "changes Litestar's default error answer, which the app's catch-all exception "
        "handler replaces on every route, and Litestar's logger (logging_config is refused)"
    ),
    "debugger_module": "used only with pdb_on_exception, which is refused",
    "experimental_features": "DTO code generation only (DTOs never apply to a FAST handler)",
    "dto": "decodes a handler's data parameter; a FAST handler has none (checked)",
    "return_dto": (
        "encodes the data a handler returns; Litestar does not resolve it for a handler "
        "that returns a Response, as a FAST handler does (checked)"
    ),
    "static_files_config": "registers its own routes, which are not FAST",
    "template_config": "template responses; a FAST handler returns Response[bytes] (checked)",
    "websocket_class": "WebSocket routes; the chain and the fast dispatch serve HTTP",
    "multipart_form_part_limit": "read by Request.form() from scope['app'], which is set",
    "response_cache_config": "applies only to handlers with cache, which is refused",
    "cache_key_builder": "applies only to handlers with cache, which is refused",
    "signature_namespace": "resolves annotations once, at start-up",
    "signature_types": "resolves annotations once, at start-up",
    "type_decoders": (
        "decode query, header and body parameters; a FAST handler takes only the request "
        "and path parameters typed as the router parses them (checked)"
    ),
    "type_encoders": (
        "encode a handler's data; a FAST handler returns Response[bytes] (checked), whose "
        "body Litestar sends as is too"
    ),
    "response_class": (
        "wraps the data a handler returns; a FAST handler returns a Response (checked), "
        "which Litestar sends without it too"
    ),
}


def _layered(name: str) -> Probe:
    """The setting ``name`` wherever a layer that owns the handler sets it."""

    def probe(handler: HTTPRouteHandler, app: Litestar) -> object:
        return [
            value for layer in handler.ownership_layers if (value := getattr(layer, name, None))
        ]

    return probe


def _other_exception_handlers(handler: HTTPRouteHandler, app: Litestar) -> object:
    """Exception handlers other than the app's catch-all, whose renderer (serving.http.errors)
    the fast dispatch uses, and the ones Litestar adds itself (Starlette's HTTPException,
    which nothing here raises)."""
    return {
        exc: answer
        for exc, answer in handler.resolve_exception_handlers().items()
        if answer is not litestar_error_handler
        and not getattr(answer, "__module__", "").startswith("litestar.")
    }


def _router_wrappers(handler: HTTPRouteHandler, app: Litestar) -> object:
    """A plugin's middleware around Litestar's router, which FAST routes skip: as Litestar
    builds it (``Litestar._create_asgi_handler``), OpenTelemetry's. (CORS, the other
    wrapper, is cors_config; a plugin's other effects are settings checked here.)"""
    try:
        return app.plugins.get("OpenTelemetryPlugin")
    except KeyError:
        return None


REFUSED: dict[str, Probe] = {
    # Litestar's handling of the request around the handler.
    "guards": lambda handler, app: handler.resolve_guards(),
    "middleware": lambda handler, app: handler.resolve_middleware(),
    "before_request": lambda handler, app: handler.resolve_before_request(),
    "after_request": _layered("after_request"),
    "after_response": lambda handler, app: handler.resolve_after_response(),
    "dependencies": lambda handler, app: handler.resolve_dependencies(),
    "parameters": lambda handler, app: handler.resolve_layered_parameters(),
    "request_class": lambda handler, app: handler.resolve_request_class() is not Request,
    "exception_handlers": _other_exception_handlers,
    # The chain's limit_body enforces the app's limit (DIGITS_MAX_BODY_BYTES) on every route.
    "request_max_body_size": lambda handler, app: (
        handler.resolve_request_max_body_size() != app.request_max_body_size
    ),
    # What Litestar adds to the answer; the fast dispatch sends the handler's Response as is.
    "response_headers": lambda handler, app: handler.resolve_response_headers(),
    "cache_control": _layered("cache_control"),
    "etag": _layered("etag"),
    "response_cookies": lambda handler, app: handler.resolve_response_cookies(),
    "background": lambda handler, app: handler.background,
    "cache": lambda handler, app: handler.cache,
    "media_type": lambda handler, app: handler.media_type,  # the Response names its own
    "status_code": lambda handler, app: handler.status_code != 200,  # a Response's default
    # App-wide features Litestar applies around its router or its routes.
    "after_exception": lambda handler, app: app.after_exception,
    "before_send": lambda handler, app: app.before_send,
    "allowed_hosts": lambda handler, app: app.allowed_hosts,
    "compression_config": lambda handler, app: app.compression_config,
    "cors_config": lambda handler, app: app.cors_config,
    "csrf_config": lambda handler, app: app.csrf_config,
    # serving.monitoring.logs logs the errors
    "logging_config": lambda handler, app: app.logging_config,
    "pdb_on_exception": lambda handler, app: app.pdb_on_exception,
    "plugins": _router_wrappers,
}


def refused_features(handler: HTTPRouteHandler, app: Litestar) -> list[str]:
    """The refused features set for ``handler`` (at any layer, or app-wide)."""
    return [name for name, probe in REFUSED.items() if probe(handler, app)]


def _parameters(function: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(function).parameters) - {"self"}


@cache
def unclassified_settings() -> frozenset[str]:
    """Settings of the installed Litestar's app, router, controller and route handler
    that are neither allowed nor refused here."""
    offered = {
        *_parameters(Litestar.__init__),
        *_parameters(Router.__init__),
        *_parameters(HTTPRouteHandler.__init__),
        *inspect.get_annotations(Controller),
    }
    return frozenset(offered - ALLOWED.keys() - REFUSED.keys())
