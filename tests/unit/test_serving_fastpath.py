"""serving.fastpath: canonical requests skip Litestar's routing with identical answers;
everything else falls back to the Litestar route with the bytes already read replayed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.fastpath import FastPath
from serving.schemas import EXAMPLE_DIGIT, EXAMPLE_FLAT
from serving.settings import Settings

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = {"content-type": "application/json"}
SLOW = {"content-type": "application/json; charset=utf-8"}


@pytest.fixture(scope="module")
def client() -> Any:
    settings = Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), max_rows=20)
    with TestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/predict", "/explain"])
def test_fast_and_litestar_paths_answer_identically(client: Any, path: str) -> None:
    body = json.dumps({"samples": [EXAMPLE_FLAT, EXAMPLE_DIGIT]})
    fast = client.post(path, content=body, headers=FAST)
    slow = client.post(path, content=body, headers=SLOW)
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    assert fast.headers["x-request-id"] != slow.headers["x-request-id"]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"samples": []}',
        b'{"samples": [[1, 2]]}',
        b'{"samples": [[17]]}',
        json.dumps({"samples": [EXAMPLE_FLAT] * 21}).encode(),
    ],
)
def test_invalid_canonical_requests_get_the_litestar_error(client: Any, body: bytes) -> None:
    fast = client.post("/predict", content=body, headers=FAST)
    slow = client.post("/predict", content=body, headers=SLOW)
    assert 400 <= fast.status_code < 500
    assert fast.status_code == slow.status_code
    fast_error, slow_error = fast.json(), slow.json()
    assert fast_error.pop("request_id") != slow_error.pop("request_id")
    assert fast_error == slow_error


def test_chunked_body_without_length_is_served(client: Any) -> None:
    def chunks() -> Any:
        yield b'{"samples": ['
        yield json.dumps(EXAMPLE_FLAT).encode()
        yield b"]}"

    answer = client.post("/predict", content=chunks(), headers=FAST)
    assert answer.status_code == 200
    assert answer.json()["labels"] == [0]


async def _payload(X: npt.NDArray[np.float32]) -> bytes:
    return json.dumps({"rows": int(X.shape[0])}).encode()


def _run(fast: FastPath, headers: list[tuple[bytes, bytes]], messages: list[Any]) -> Any:
    scope: Any = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    queue = list(messages)
    sent: list[Any] = []

    async def receive() -> Any:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    async def go() -> tuple[Any, list[Any]]:
        fallback = await fast(scope, receive, send)
        replayed = []
        if fallback is not None:
            while True:
                message = await fallback()
                replayed.append(message)
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
        return fallback, replayed

    fallback, replayed = asyncio.run(go())
    return fallback, replayed, sent


def _fast_path(ready: bool = True, limit: int = 10_000) -> FastPath:
    return FastPath(
        {"/predict": _payload},
        is_ready=lambda: ready,
        max_body_bytes=limit,
        max_rows=5,
    )


def _headers(length: int, content_type: bytes = b"application/json") -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(length).encode())]


def test_serves_a_canonical_request() -> None:
    body = json.dumps({"samples": [[1] * 64, [2] * 64]}).encode()
    message = {"type": "http.request", "body": body, "more_body": False}
    fallback, _, sent = _run(_fast_path(), _headers(len(body)), [message])
    assert fallback is None
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"rows": 2}


@pytest.mark.parametrize(
    ("ready", "content_type", "limit"),
    [
        (False, b"application/json", 10_000),
        (True, b"text/plain", 10_000),
        (True, b"application/json", 10),
    ],
)
def test_declines_before_reading(ready: bool, content_type: bytes, limit: int) -> None:
    body = b'{"samples": [[1]]}'
    message = {"type": "http.request", "body": body, "more_body": False}
    fast = _fast_path(ready=ready, limit=limit)
    _fallback, replayed, sent = _run(fast, _headers(len(body), content_type), [message])
    assert sent == []
    assert replayed == [message]  # nothing was consumed


def test_invalid_body_is_replayed_whole() -> None:
    parts = [b'{"samples": ', b"[[1, 2]]}"]
    messages = [
        {"type": "http.request", "body": parts[0], "more_body": True},
        {"type": "http.request", "body": parts[1], "more_body": False},
    ]
    _fallback, replayed, sent = _run(_fast_path(), _headers(21), messages)
    assert sent == []
    assert b"".join(m["body"] for m in replayed) == b"".join(parts)
    assert replayed[-1]["more_body"] is False


def test_body_longer_than_announced_and_over_limit_is_replayed_then_streamed() -> None:
    messages = [
        {"type": "http.request", "body": b"x" * 8, "more_body": True},
        {"type": "http.request", "body": b"y" * 8, "more_body": True},
        {"type": "http.request", "body": b"z" * 8, "more_body": False},
    ]
    _fallback, replayed, sent = _run(_fast_path(limit=12), _headers(5), messages)
    assert sent == []
    assert b"".join(m["body"] for m in replayed) == b"x" * 8 + b"y" * 8 + b"z" * 8


def test_a_bug_in_the_payload_answers_500_with_the_error_shape() -> None:
    async def broken(X: npt.NDArray[np.float32]) -> bytes:
        raise RuntimeError("boom")

    fast = FastPath(
        {"/predict": broken},
        is_ready=lambda: True,
        max_body_bytes=10_000,
        max_rows=5,
    )
    body = json.dumps({"samples": [[1] * 64]}).encode()
    message = {"type": "http.request", "body": body, "more_body": False}
    fallback, _, sent = _run(fast, _headers(len(body)), [message])
    assert fallback is None
    assert sent[0]["status"] == 500
    error = json.loads(sent[1]["body"])
    assert (error["status"], error["reason"]) == (500, "internal_error")
