"""Request ids, HTTP metrics and the access log: the observing steps of the request chain."""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Protocol

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from serving.http_io import header
from serving.logs import request_id_var
from serving.state import service_of

access_log = logging.getLogger("serving.access")
UNMATCHED = "unmatched"
OTHER_METHOD = "other"  # the method label of any method no route answers
ANSWERED = "digits.answered"  # scope key: a later step's AnswerHook for this request


class AnswerHook(Protocol):
    """What a later step puts in ``scope[ANSWERED]`` to act once the request is answered:
    called with the status and the request's duration, before the last body byte is
    sent, and not at all when no complete answer is sent (an error or a disconnect)."""

    def answered(self, status: int, seconds: float) -> None: ...


# Generated ids: a random per-process prefix and a counter, unique across workers and
# restarts without a getrandom syscall per request.
_ID_PREFIX = os.urandom(10).hex()
_ID_COUNTER = itertools.count()


def new_id_prefix() -> None:
    """A forked worker must not repeat its parent's ids."""
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(10).hex()


os.register_at_fork(after_in_child=new_id_prefix)


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when usable (1-128 printable characters), else a new id."""
    value = header(scope, b"x-request-id")
    if value is not None:
        text = value.decode("latin-1")
        if 0 < len(text) <= 128 and text.isprintable():
            return text
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


def answered_methods(app: Litestar) -> frozenset[str]:
    """The HTTP methods some route of ``app`` answers: the only method labels there are."""
    return frozenset(
        method for route in app.routes for method in getattr(route, "methods", ()) or ()
    )


def observe(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: request id (context and ``X-Request-ID`` header), metrics, access log,
    and the answer hook of a later step (:data:`ANSWERED`).

    The route label is the template the route step resolved (``unmatched`` otherwise); the
    method label is the request's method when a route answers it, ``other`` otherwise: the
    client chooses the method, and a label per invented method would grow every HTTP series
    (and the multiprocess files) without bound, before authentication.
    The request is counted before the last body byte leaves, so a client that has its
    answer (and then scrapes /metrics, maybe from another worker) always sees it counted.
    """
    metrics = service_of(app).metrics
    methods = answered_methods(app)

    async def step(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        rid = request_id(scope)
        token = request_id_var.set(rid)
        id_header = (b"x-request-id", rid.encode("latin-1"))
        method = scope["method"]  # type: ignore[typeddict-item]
        if method not in methods:
            method = OTHER_METHOD
        route = scope.get("path_template") or UNMATCHED
        status = 500
        elapsed: float | None = None
        progress = metrics.in_progress_child(route, method)
        progress.inc()

        async def observed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif not message.get("more_body", False) and elapsed is None:
                elapsed = time.perf_counter() - started
                metrics.observe_request(route, method, status, elapsed)
                hook: AnswerHook | None = scope.get(ANSWERED)  # type: ignore[assignment]
                if hook is not None:
                    hook.answered(status, elapsed)
            await send(message)

        try:
            await inner(scope, receive, observed_send)
        finally:
            progress.dec()
            if elapsed is None:  # no complete response was sent (error or disconnect)
                elapsed = time.perf_counter() - started
                metrics.observe_request(route, method, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            request_id_var.reset(token)

    return step
