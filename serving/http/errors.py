"""Error answers: the documented error shape (native routes) and ``{"error": ...}`` (OIP).

One renderer, :func:`error_answer`, used by Litestar's exception handling, by the fast
dispatch (:mod:`serving.http.dispatch`) and by the chain's :func:`answer_errors` step (errors
raised by steps themselves).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send

from serving.http.body import send_answer
from serving.inference.inputs import ClientError
from serving.monitoring.logs import request_id_var
from serving.protocol.oip import OIP_PREFIX, error_body
from serving.schemas import ErrorResponse
from serving.state import ServiceState, service_of

log = logging.getLogger("serving")
_ENCODER = msgspec.json.Encoder()
_STATUS_REASONS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}

# Litestar's detail for these echoes the request (the static files router names the path it
# looked for): the answer is the status phrase, whatever the client sent.
_PHRASE_ONLY = frozenset({404, 405})


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def is_oip(path: str) -> bool:
    """Whether ``path`` is in the Open Inference Protocol's URL space (its error shape)."""
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


def _native(status: int, reason: str, message: str, location: str | None) -> bytes:
    return _ENCODER.encode(
        ErrorResponse(
            status=status,
            reason=reason,
            message=message,
            location=location,
            request_id=request_id_var.get(),
        )
    )


# Refusals counted by their own metrics (auth failures, rate limits), not as invalid input.
_NOT_VALIDATION = frozenset({401, 403, 429, 503})


def _client_error(service: ServiceState, path: str, exc: ClientError) -> ErrorAnswer:
    if exc.status not in _NOT_VALIDATION:
        service.metrics.validation_failures.labels(exc.reason).inc()
    log.info("rejected request: %s", exc.message, extra={"reason": exc.reason})
    # 408: the rest of the body may still arrive; the connection cannot be reused.
    if is_oip(path):
        # Row limit: 400 as in the spec; a body over the byte limit stays 413.
        status = 400 if exc.reason == "too_many_rows" else exc.status
        body = error_body(exc.message)
    else:
        status = exc.status
        body = _native(exc.status, exc.reason, exc.message, exc.location)
    headers = {**exc.headers, "connection": "close"} if status == 408 else exc.headers
    return ErrorAnswer(status, body, headers)


def _http_error(service: ServiceState, path: str, exc: HTTPException) -> ErrorAnswer:
    status = exc.status_code
    reason = _STATUS_REASONS.get(status, "client_error")
    if reason == "body_too_large":
        service.metrics.validation_failures.labels(reason).inc()
        message = f"Request body exceeds the limit of {service.settings.max_body_bytes} bytes"
    elif status in _PHRASE_ONLY:
        message = HTTPStatus(status).phrase
    else:
        message = str(exc.detail)
    log.info("rejected request: %s", message, extra={"reason": reason})
    headers = dict(getattr(exc, "headers", None) or {})
    body = error_body(message) if is_oip(path) else _native(status, reason, message, None)
    return ErrorAnswer(status, body, headers)


def server_error_answer(exc: BaseException) -> ErrorAnswer:
    log.error("internal error", exc_info=exc)
    return ErrorAnswer(500, _native(500, "internal_error", "Internal server error", None))


def error_answer(service: ServiceState, path: str, exc: Exception) -> ErrorAnswer:
    """The answer to an exception raised while serving ``path``."""
    if isinstance(exc, ClientError):
        return _client_error(service, path, exc)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return _http_error(service, path, exc)
    return server_error_answer(exc)


def error_response(service: ServiceState, path: str, exc: Exception) -> ASGIResponse:
    """:func:`error_answer` as an ASGI response (FAST handlers' errors)."""
    answer = error_answer(service, path, exc)
    return ASGIResponse(
        body=answer.body,
        status_code=answer.status,
        headers=answer.headers,
        media_type=MediaType.JSON,
    )


def litestar_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Litestar's exception handler for every exception (routing, handlers, its middleware)."""
    answer = error_answer(service_of(request.app), request.scope["path"], exc)
    return Response(
        answer.body, status_code=answer.status, headers=answer.headers, media_type=MediaType.JSON
    )


def answer_errors(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: an exception raised by a later step becomes its error answer.

    (Route handlers' errors, FAST or not, are answered at the end of the chain.)"""
    service = service_of(app)

    async def step(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await inner(scope, receive, send)
        except Exception as exc:
            answer = error_answer(service, scope["path"], exc)
            headers = [(key.encode(), value.encode()) for key, value in answer.headers.items()]
            try:
                await send_answer(send, answer.status, answer.body, extra=headers)
            except Exception:  # the response had started: too late for an error answer
                raise exc from None

    return step
