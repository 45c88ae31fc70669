"""Security headers of the Swagger UI page (``/docs``): a Content-Security-Policy that admits
exactly its own inline bootstrap script and style (by sha256) and nothing from elsewhere, and
``frame-ancestors 'none'`` so no other site can frame it (clickjacking).

Swagger UI's page carries the OpenAPI document in an inline script, so a fixed ``script-src
'self'`` would break it and ``'unsafe-inline'`` would admit any injected script: the hashes of
the inline blocks of the answer itself are put in the policy instead.
"""

from __future__ import annotations

import base64
import hashlib
import re

from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

_INLINE = re.compile(rb"<(script|style)\b[^>]*>(.*?)</\1>", re.DOTALL)
_BASE_POLICY = (
    "default-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_FIXED = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


def content_security_policy(html: bytes) -> str:
    """The policy for ``html``: 'self' plus the sha256 of each non-empty inline block."""
    sources: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for kind, body in _INLINE.findall(html):
        if body.strip():
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
            sources[kind.lower()].append(f"'sha256-{digest}'")
    script = " ".join(["'self'", *sources[b"script"]])
    style = " ".join(["'self'", *sources[b"style"]])
    return f"{_BASE_POLICY}; script-src {script}; style-src {style}"


def docs_security_headers(app: ASGIApp) -> ASGIApp:
    """ASGI middleware for the ``/docs`` router: buffer an HTML answer, send it with its CSP."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        start: HTTPResponseStartEvent | None = None
        chunks: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            policy = content_security_policy(body).encode("ascii")
            names = {b"content-security-policy", *(name for name, _ in _FIXED)}
            headers = list(start.get("headers", ()))
            kept = [pair for pair in headers if pair[0].lower() not in names]
            start["headers"] = [*kept, (b"content-security-policy", policy), *_FIXED]
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await app(scope, receive, send_with_headers)

    return with_headers
