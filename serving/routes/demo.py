"""The drawing demo page (``GET /``) and its static assets, under a strict Content-Security-Policy.

Every asset is local (plain HTML, CSS and JavaScript modules in ``serving/static/demo``).
The security headers are added only to the page and its assets, so Swagger UI at ``/docs``
(which needs an inline bootstrap script) is unaffected.

The page says whether ``POST /feedback`` is in the route table (``DIGITS_FEEDBACK``) in its
``<meta name="digits-feedback">``: with auth on, a missing route answers like any
undeclared path (a key with every scope is needed to see its 404), so the page cannot
learn it from an answer.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, Router, get
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from serving.access import public
from serving.state import service_of

DEMO_DIR = Path(__file__).resolve().parents[1] / "static" / "demo"
DEMO_STATIC_PATH = "/static/demo"
DEMO_PAGE_PATH = "/"
FEEDBACK_OFF = b'<meta name="digits-feedback" content="off">'
FEEDBACK_ON = b'<meta name="digits-feedback" content="on">'
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
)


def security_headers(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: add the CSP and related headers to every response of ``app``."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in SECURITY_HEADERS}
                kept = [pair for pair in message.get("headers", ()) if pair[0].lower() not in names]
                message["headers"] = [*kept, *SECURITY_HEADERS]
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers


@cache
def _page(feedback: bool) -> bytes:
    page = (DEMO_DIR / "index.html").read_bytes()
    if page.count(FEEDBACK_OFF) != 1:
        raise RuntimeError("index.html must hold the digits-feedback meta tag once")
    return page.replace(FEEDBACK_OFF, FEEDBACK_ON) if feedback else page


def demo_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The drawing page, saying whether feedback is on."""
    feedback = service_of(request.app).settings.feedback == "on"
    return Response(_page(feedback), media_type=MediaType.HTML)


def demo_router() -> Router:
    """``GET /`` (the page) and ``/static/demo/...`` (its assets), outside the OpenAPI schema."""
    page = get(DEMO_PAGE_PATH, sync_to_thread=False, include_in_schema=False, name="demo-page")
    assets = create_static_files_router(
        path=DEMO_STATIC_PATH, directories=[DEMO_DIR], name="demo-static", include_in_schema=False
    )
    return Router(
        path="/",
        route_handlers=[page(demo_page), assets],
        middleware=[security_headers],
        include_in_schema=False,
        opt=public(),  # the page asks for a key; /predict itself needs one
    )


__all__ = ["CONTENT_SECURITY_POLICY", "DEMO_STATIC_PATH", "demo_router"]
