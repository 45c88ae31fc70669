"""Fast dispatch of canonical inference requests, ahead of Litestar's routing and DI.

A canonical request is ``POST /predict`` or ``POST /explain`` with
``Content-Type: application/json`` exactly, a ``Content-Length`` within the byte
limit, a body that decodes to valid samples, and a ready model. Such a request is
answered here with the same bytes the Litestar route would produce (both call the
same payload functions), skipping per-request framework work that dominates
single-row latency (see docs/performance.md).

Everything else, including every request this path starts reading and then finds
invalid, falls back to the Litestar route with the bytes already read replayed, so
there is one implementation of every error answer (the documented error shape).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from litestar.types import HTTPRequestEvent, HTTPScope, Receive, Send

from serving.inputs import ClientError, decode_samples
from serving.logs import request_id_var
from serving.schemas import ErrorResponse

log = logging.getLogger("serving")
# Response bytes for validated samples (records the batch: rows, drift window, classes).
PayloadFunction = Callable[[npt.NDArray[np.float32]], Awaitable[bytes]]
# A route that decodes its own body: (scope, body) -> (content, content type, extra headers),
# or None when the request is not canonical (the Litestar route then answers it).
RawAnswer = tuple[bytes, bytes, list[tuple[bytes, bytes]]]
RawRoute = Callable[[HTTPScope, bytes], Awaitable[RawAnswer | None]]
_JSON = b"application/json"


def replaying_receive(chunks: list[bytes], more_body: bool, receive: Receive) -> Receive:
    """A ``receive`` that first hands back the body bytes already read, then reads on."""
    pending: list[HTTPRequestEvent] = []
    if chunks or not more_body:
        event: HTTPRequestEvent = {
            "type": "http.request",
            "body": b"".join(chunks),
            "more_body": more_body,
        }
        pending.append(event)

    async def replay() -> Any:
        if pending:
            return pending.pop()
        return await receive()

    return replay


class FastPath:
    """Serves canonical requests; returns the ``receive`` to use for Litestar otherwise."""

    def __init__(
        self,
        routes: Mapping[str, PayloadFunction],
        is_ready: Callable[[], bool],
        max_body_bytes: int,
        max_rows: int,
        raw_routes: Callable[[str], tuple[str, RawRoute] | None] | None = None,
    ) -> None:
        self._routes = dict(routes)
        self._raw_routes = raw_routes
        self._is_ready = is_ready
        self._max_body_bytes = max_body_bytes
        self._max_rows = max_rows

    def accepts(self, scope: HTTPScope) -> PayloadFunction | tuple[str, RawRoute] | None:
        """The payload function (or route template and raw route) for a canonical request."""
        payload: PayloadFunction | tuple[str, RawRoute] | None = None
        if scope["method"] == "POST":
            payload = self._routes.get(scope["path"])
            if payload is None and self._raw_routes is not None:
                payload = self._raw_routes(scope["path"])
        if payload is None or not self._is_ready():
            return None
        content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
        if content_type != _JSON or content_length is None or not content_length.isdigit():
            return None
        if int(content_length) > self._max_body_bytes:
            return None
        return payload

    async def __call__(self, scope: HTTPScope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request (returns None) or return the ``receive`` Litestar should use."""
        payload = self.accepts(scope)
        if payload is None:
            return receive
        chunks: list[bytes] = []
        size = 0
        more_body = True
        while more_body:
            try:
                message = await receive()
            except ClientError:
                return replaying_receive(chunks, True, receive)
            if message["type"] != "http.request":
                return replaying_receive(chunks, True, _returning(message, receive))
            chunk = message.get("body", b"")
            more_body = bool(message.get("more_body", False))
            if chunk:
                size += len(chunk)
                chunks.append(chunk)
                if size > self._max_body_bytes:
                    return replaying_receive(chunks, more_body, receive)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if isinstance(payload, tuple):
            return await self._raw(payload, scope, body, receive, send)
        try:
            X = decode_samples(body, self._max_rows)
        except ClientError:
            return replaying_receive([body], False, receive)
        scope["path_template"] = scope["path"]
        status = 200
        try:
            content = await payload(X)
        except Exception:  # a bug, not a client mistake: same answer as the Litestar route
            log.exception("internal error")
            status, content = 500, _internal_error_body()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", _JSON),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content, "more_body": False})
        return None

    async def _raw(
        self,
        route: tuple[str, RawRoute],
        scope: HTTPScope,
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> Receive | None:
        template, answer_for = route
        status = 200
        try:
            answer = await answer_for(scope, body)
        except ClientError:  # the Litestar route answers every error, with its shape
            answer = None
        except Exception:  # a bug, not a client mistake: same answer as the Litestar route
            log.exception("internal error")
            answer = (_internal_error_body(), _JSON, [])
            status = 500
        if answer is None:
            return replaying_receive([body], False, receive)
        content, content_type, extra_headers = answer
        scope["path_template"] = template
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(content)).encode()),
                    *extra_headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": content, "more_body": False})
        return None


def _internal_error_body() -> bytes:
    error = ErrorResponse(
        status=500,
        reason="internal_error",
        message="Internal server error",
        request_id=request_id_var.get(),
    )
    return msgspec.json.encode(error)


def _returning(first: Any, receive: Receive) -> Receive:
    """A ``receive`` that returns ``first`` once (e.g. a disconnect), then reads on."""
    pending = [first]

    async def again() -> Any:
        if pending:
            return pending.pop()
        return await receive()

    return again
