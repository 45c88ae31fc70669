"""Raw HTTP I/O: header lookup, body reading, the body limit and deadline, raw sends."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.types import ASGIApp, HTTPScope, Receive, ReceiveMessage, Scope, Send

from serving.inference.inputs import ClientError
from serving.state import service_of

JSON = b"application/json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Headers = list[tuple[bytes, bytes]]


def header(scope: Scope | HTTPScope, name: bytes) -> bytes | None:
    """The first value of the (lower-case) header ``name``, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def require_json(scope: Scope | HTTPScope) -> None:
    """415 unless the Content-Type is JSON (``application/json`` or ``*+json``)."""
    value = header(scope, b"content-type")
    if value == JSON:
        return
    content_type = "" if value is None else value.decode("latin-1")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ClientError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {content_type or 'none'!r}",
            "header:content-type",
        )


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the chain's body step enforces the limit and deadline)."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        return message.get("body", b"")
    chunks: list[bytes] = []
    while True:
        if message["type"] == "http.disconnect":
            raise ClientError(400, "client_disconnected", "client disconnected mid-request")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


def body_too_large(limit: int) -> ClientError:
    return ClientError(
        413, "body_too_large", f"Request body exceeds the limit of {limit} bytes", "body"
    )


def limited_receive(scope: Scope, receive: Receive, limit: int, timeout: float) -> Receive:
    """``receive`` that enforces the byte limit (413) and the body deadline (408).

    The announced Content-Length is checked on the first read (so a route's earlier
    checks, such as the content type and readiness, answer first); the deadline runs
    from the first read: one timer per request, which cancels a read still waiting when
    it fires. Once the body is complete, later calls (disconnect waits) pass straight
    through.
    """
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[Any] | None = None
    complete = waiting = expired = False
    size = 0

    def expire() -> None:
        nonlocal expired
        if waiting and task is not None:
            expired = True
            task.cancel()

    async def receive_limited() -> ReceiveMessage:
        nonlocal timer, task, complete, waiting, expired, size
        if complete:
            return await receive()
        if timer is None:
            announced = header(scope, b"content-length")
            if announced is not None and announced.isdigit() and int(announced) > limit:
                raise body_too_large(limit)
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            timer = loop.call_at(loop.time() + timeout, expire)
        waiting = True
        try:
            message = await receive()
        except asyncio.CancelledError:
            if not expired or task is None:
                raise
            expired = False
            task.uncancel()
            raise ClientError(
                408, "body_timeout", f"Request body not received within {timeout:g} seconds", "body"
            ) from None
        finally:
            waiting = False
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                timer.cancel()
                raise body_too_large(limit)
            if message.get("more_body", False):
                return message
        complete = True
        timer.cancel()
        return message

    return receive_limited


def limit_body(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: requests with a body get :func:`limited_receive` (413 and 408)."""
    settings = service_of(app).settings
    limit, timeout = settings.max_body_bytes, settings.body_read_timeout_seconds

    async def step(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") in BODY_METHODS:
            receive = limited_receive(scope, receive, limit, timeout)
        await inner(scope, receive, send)

    return step


async def send_answer(
    send: Send, status: int, body: bytes, content_type: bytes = JSON, extra: Headers | None = None
) -> None:
    """A complete response in two ASGI messages."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(extra or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
