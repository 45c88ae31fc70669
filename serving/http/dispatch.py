"""Routing for the request chain, and the dispatch at its end.

Litestar's router (built from the one route table, :mod:`serving.routes`) resolves every
request once, at the start of the chain, so every step knows the route template. At the
end of the chain a handler marked ``opt={FAST: True}`` is called directly with a
``Request`` and its path parameters, and its ``Response`` of encoded bytes is sent as is,
skipping Litestar's per-request DI, signature parsing and response pipeline
(docs/performance.md measures the difference); a Litestar feature it would skip is
refused at start-up (:mod:`serving.http.fast_features`). Everything else, including 404 and
405, is answered by Litestar itself. Errors of either are
answered at the end of the chain with the same renderer (:mod:`serving.http.errors`), so every
step sees the error answer.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import (
    ImproperlyConfiguredException,
    MethodNotAllowedException,
    NotFoundException,
)
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils import normalize_path
from litestar.utils.helpers import get_enum_string_value

from serving.access import required_access, route_decides
from serving.decisions.decided import Decided
from serving.decisions.outcome import OUTCOME, DecidedResponse
from serving.http.body import send_answer
from serving.http.errors import error_response
from serving.http.fast_features import refused_features, unclassified_settings
from serving.state import service_of

FAST = "fast_dispatch"  # opt key: serve this handler directly at the end of the chain
ROUTE = "digits.route"  # scope key: the resolved Route (None when unmatched)
FAST_DISPATCHED = "digits.fast_dispatched"  # scope key: True when a FAST handler answered
FastHandler = Callable[..., Awaitable[Response[bytes]]]


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved route: its template, path parameters and the direct handler, if FAST."""

    template: str
    params: dict[str, Any]
    handler: Any
    fast: FastHandler | None
    head_as_get: bool
    access: str  # what the handler needs (serving.access), resolved once per cached route
    decides: bool  # its answers are recorded decisions (serving.access.route_decides)


def route_finder(app: Litestar) -> Callable[[str, str], Route | None]:
    """``find(path, method)``: the route Litestar's router gives, or None (bounded cache)."""
    router = app.asgi_router

    def lookup(path: str, method: str) -> Route:
        _, handler, _, params, template = router.handle_routing(path, method)
        fast = handler.fn if handler.opt.get(FAST) else None
        return Route(
            template,
            params,
            handler,
            fast,
            False,
            required_access(handler),
            route_decides(handler),
        )

    @lru_cache(1024)
    def find(path: str, method: str) -> Route | None:
        path = normalize_path(path)
        if method == "HEAD":  # every GET route answers HEAD the same way (serve_head)
            try:
                route = lookup(path, "GET")
            except (NotFoundException, MethodNotAllowedException):
                pass
            else:
                return Route(
                    route.template, route.params, route.handler, None, True, route.access, False
                )
        try:
            return lookup(path, method)
        except (NotFoundException, MethodNotAllowedException):
            return None

    return find


def resolve_route(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: resolve the route once; later steps read ``scope["path_template"]``."""
    find = route_finder(app)

    async def step(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if root_path := scope.get("root_path", ""):
            path = path.split(root_path, maxsplit=1)[-1]
        route = find(path, scope["method"])  # type: ignore[typeddict-item]
        scope[ROUTE] = route  # type: ignore[literal-required]
        if route is not None:
            scope["path_template"] = route.template
        await inner(scope, receive, send)

    return step


def serve_head(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: HEAD on a GET route is answered as GET without the body (same headers)."""

    async def step(scope: Scope, receive: Receive, send: Send) -> None:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        if route is None or not route.head_as_get:
            await inner(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        as_get: Any = {**scope, "method": "GET"}  # earlier steps keep seeing HEAD
        await inner(as_get, receive, send_without_body)

    return step


def dispatcher(app: Litestar) -> ASGIApp:
    """The end of the chain: a FAST handler directly, anything else through Litestar."""
    litestar_app = Litestar.__call__.__get__(app)
    service = service_of(app)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        if route is None or route.fast is None:
            await litestar_app(scope, receive, send)
            return
        scope[FAST_DISPATCHED] = True  # type: ignore[literal-required]
        scope["app"] = scope["litestar_app"] = app
        scope["route_handler"] = route.handler
        scope["path_params"] = route.params
        scope.setdefault("state", {})
        try:
            response = await route.fast(Request(scope, receive, send), **route.params)
            if route.decides:
                scope[OUTCOME] = decided_outcome(route, response)  # type: ignore[literal-required]
        except Exception as exc:  # answered here, as Litestar answers its routes' errors
            await error_response(service, scope["path"], exc)(scope, receive, send)
            return
        await send_response(send, response)

    return dispatch


def decided_outcome(route: Route, response: Response[bytes]) -> Decided | None:
    """What a deciding route's answer decided (read by the decision step), or None for an
    answer that decided nothing (not 2xx). A 2xx answer without an outcome is a bug in its
    handler: an error answer, never a silently missing decision record."""
    if isinstance(response, DecidedResponse):
        return response.outcome
    if 200 <= (response.status_code or 200) < 300:
        raise ImproperlyConfiguredException(
            f"{route.template}: a deciding route answered 2xx without a DecidedResponse"
        )
    return None


async def send_response(send: Send, response: Response[bytes]) -> None:
    """A FAST handler's ``Response`` of encoded bytes: status, media type, headers, body."""
    if response.cookies or response.background is not None:
        raise ImproperlyConfiguredException("FAST handlers answer without cookies or background")
    media_type = get_enum_string_value(response.media_type or MediaType.JSON)
    extra = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
    ]
    await send_answer(
        send, response.status_code or 200, response.content, media_type.encode(), extra
    )


def check_fast_handlers(app: Litestar) -> None:
    """Start-up check: a FAST handler gets everything Litestar would give it, or the app
    does not start. It is async, takes only ``request`` and path parameters (typed as the
    router parses them), returns a ``Response[bytes]``, and has none of the Litestar
    features the fast dispatch does not apply (:mod:`serving.http.fast_features`: guards,
    middleware, hooks, dependencies, response headers, CORS... cross-cutting steps belong
    in the chain, which every request passes)."""
    unclassified = unclassified_settings()
    if unclassified:
        raise ImproperlyConfiguredException(
            f"Litestar settings {sorted(unclassified)} are not classified as applied or "
            "refused by the fast dispatch (serving/http/fast_features.py)"
        )
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.opt.get(FAST):
                _check_fast_handler(app, route, handler)
            elif route_decides(handler):
                raise ImproperlyConfiguredException(
                    f"{handler.handler_name} ({route.path}): a deciding route must be {FAST}: "
                    "its outcome reaches the decision step through the fast dispatch"
                )


def _check_fast_handler(app: Litestar, route: HTTPRoute, handler: HTTPRouteHandler) -> None:
    name = f"{handler.handler_name} ({route.path})"
    signature = handler.parsed_fn_signature
    path_types = {key: value.type for key, value in route.path_parameters.items()}
    if (
        set(signature.parameters) - {"request", *path_types}
        or any(
            signature.parameters[key].annotation is not kind
            for key, kind in path_types.items()
            if key in signature.parameters
        )
        or not inspect.iscoroutinefunction(handler.fn)
        or signature.return_type.origin is not Response
        or signature.return_type.args != (bytes,)
    ):
        raise ImproperlyConfiguredException(
            f"{name}: a {FAST} handler must be async, take only request and path parameters "
            "(typed as in the path), and return Response[bytes]"
        )
    refused = refused_features(handler, app)
    if refused:
        raise ImproperlyConfiguredException(
            f"{name}: a {FAST} handler is called without Litestar's request handling, which "
            f"would apply {', '.join(refused)}: remove them from the handler and the layers "
            "above it, or the FAST option (serving/http/fast_features.py lists what it applies)"
        )
