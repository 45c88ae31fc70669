"""Run the app in-process: a started TestClient, or a raw POST body with no test client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from serving.app import create_app
from serving.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def service_client(**settings: Any) -> Iterator[TestClient[Any]]:
    """A TestClient of the app on the repository's dvc.lock with ``settings``, started
    (lifespan run) and stopped afterwards."""
    app = create_app(Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), **settings))
    with TestClient(app=app) as client:
        yield client


async def post_raw(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """Status and body bytes of ``POST path`` with a JSON content type."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Any] = []

    async def receive() -> Any:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # the client never disconnects

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])
