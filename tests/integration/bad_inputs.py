"""Catalogue of hostile and malformed requests against the real server (raw sockets): the
request builders, the exchange and the checks shared by the catalogue files
(tests/integration/test_bad_inputs_json.py, test_bad_inputs_oip.py, test_bad_inputs_http.py).

Every case sends exact bytes (no client library normalises them) and asserts the status,
the documented error shape -- ``{status, reason, message, location, request_id}`` for the
``/predict`` family and every non-``/v2`` route, ``{"error": ...}`` for ``/v2`` -- and that
the server is healthy afterwards: ``GET /health`` answers 200 and a good ``/predict`` 200.

Decided behaviours the catalogue pins down:

* Duplicate ``samples`` keys: msgspec validates every occurrence while decoding and the
  **last** one wins (a valid first and a valid second with 2 rows -> 2 labels; an invalid
  occurrence anywhere -> 400).
* JSON must be UTF-8 without a BOM (RFC 8259); UTF-16 (with or without BOM) and a UTF-8 BOM
  are ``malformed_json`` 400s.
* ``-0.0`` is the pixel value 0 (200, same answer as ``0.0``).
* ``1e309`` and ``10**400`` overflow a double and ``1e308`` is a finite number far above 16:
  all are ``out_of_range`` 400s, never inf/NaN reaching the model.
* Slow clients: request headers not complete within ``DIGITS_HEADER_READ_TIMEOUT`` -> granian
  closes the connection without an answer; a body not complete within
  ``DIGITS_BODY_READ_TIMEOUT`` (counted from the first body read) -> 408 with
  ``Connection: close``.
* Requests granian rejects before the application sees them (an unparseable
  ``Content-Length``) get granian's bare 400 and a closed connection ("protocol" shape).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server

HEADER_TIMEOUT_SECONDS = 1.5
BODY_TIMEOUT_SECONDS = 1.5
MAX_BODY_BYTES = 1 << 20
SLACK_SECONDS = 3.0
MODEL = "digits-classifier"
INFER = f"/v2/models/{MODEL}/infer"
ROW = [float(value % 17) for value in range(64)]
ROW_JSON = json.dumps(ROW).encode()
GOOD_BODY = b'{"samples":[' + ROW_JSON + b"]}"
ZEROS_TAIL = b",0" * 63
SECRETS = (b"def create_app", b"root:x:0:0", b"stages:", b"[tool.", b"import ")


@dataclass(frozen=True)
class Reply:
    """What came back on the socket: status None when the server closed without answering."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    seconds: float
    closed: bool


@dataclass(frozen=True)
class Case:
    name: str
    chunks: tuple[bytes, ...]
    status: int | None
    shape: str  # "service", "oip", "ok", "protocol", "closed"
    pause: float = 0.0
    reason: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    timed: bool = False


def request(
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str | None = "application/json",
    extra: str = "",
) -> bytes:
    """An HTTP/1.1 request with Content-Length (and ``Connection: close``)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode("latin-1") + body


def predict(body: bytes, **kwargs: Any) -> bytes:
    return request("POST", "/predict", body, **kwargs)


def infer_body(tensor: dict[str, Any]) -> bytes:
    return json.dumps({"inputs": [tensor]}).encode()


def pixels(data: Any, shape: list[int], datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "pixels", "shape": shape, "datatype": datatype, "data": data}


def head_only(method: str, path: str, content_length: str) -> bytes:
    """Request line and headers announcing a JSON body of ``content_length`` (no body)."""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode("latin-1")


def get(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def chunked_over_limit() -> bytes:
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunk = b"%x\r\n" % (256 * 1024) + b" " * (256 * 1024) + b"\r\n"
    return head + chunk * 6 + b"0\r\n\r\n"


DEEP = b"[" * 10_000 + b"]" * 10_000


def exchange(port: int, case: Case, timeout: float) -> Reply:
    """Send the case's chunks (pausing between them) and read one response or the close."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for index, chunk in enumerate(case.chunks):
                if index and case.pause:
                    time.sleep(case.pause)
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413, 408) and closed while we were still sending
        data = b""
        closed = False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except ConnectionResetError:
            closed = True
    seconds = time.perf_counter() - started
    if not data:
        return Reply(None, {}, b"", seconds, closed)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body, seconds, closed)


def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The real 2-worker server with short read timeouts and a 1 MiB body limit (a module
    fixture of each catalogue file: ``yield from limited_server(tmp_path_factory)``)."""
    env = {
        "DIGITS_HEADER_READ_TIMEOUT": str(HEADER_TIMEOUT_SECONDS),
        "DIGITS_BODY_READ_TIMEOUT": str(BODY_TIMEOUT_SECONDS),
        "DIGITS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    running = start_server(env, workers=2, log_dir=tmp_path_factory.mktemp("bad-inputs"))
    yield running
    assert stop_server(running) == 0


def assert_healthy(server: RunningServer) -> None:
    health = exchange(server.port, Case("health", (get(b"/health"),), 200, "ok"), timeout=10)
    assert health.status == 200, health
    good = exchange(server.port, Case("good", (predict(GOOD_BODY),), 200, "ok"), timeout=10)
    assert good.status == 200, good
    assert len(json.loads(good.body)["labels"]) == 1
    assert server.process.poll() is None


def check_shape(case: Case, reply: Reply) -> None:
    if case.shape == "closed":
        assert reply.status is None, reply
        assert reply.closed, reply
        return
    assert reply.status == case.status, reply
    if case.shape == "protocol":
        assert reply.closed, reply
        return
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    payload = json.loads(reply.body)
    if case.shape == "ok":
        return
    if case.shape == "oip":
        assert set(payload) == {"error"}, payload
        assert isinstance(payload["error"], str), payload
        assert payload["error"], payload
        return
    assert set(payload) == {"status", "reason", "message", "location", "request_id"}, payload
    assert payload["status"] == case.status, payload
    assert isinstance(payload["message"], str), payload
    assert payload["message"], payload
    assert payload["location"] is None or isinstance(payload["location"], str), payload
    assert payload["request_id"] == reply.headers.get("x-request-id"), payload
    if case.reason is not None:
        assert payload["reason"] == case.reason, payload


def run_case(server: RunningServer, case: Case) -> None:
    """Send ``case``, check the answer's status and shape (and timing, for timed cases), then
    that the server is still healthy."""
    limit = max(HEADER_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS) + SLACK_SECONDS
    reply = exchange(server.port, case, timeout=limit + 10)
    check_shape(case, reply)
    if case.timed:
        # The server, not the client, ended the exchange, within the configured timeout.
        assert reply.closed, reply
        assert reply.seconds < limit + case.pause * len(case.chunks), reply
    if reply.status == 408:
        assert reply.headers.get("connection") == "close", reply
    if "same_as" in case.expect:
        reference = exchange(
            server.port, Case("ref", (predict(case.expect["same_as"]),), 200, "ok"), 10
        )
        assert json.loads(reply.body)["labels"] == json.loads(reference.body)["labels"]
        assert (
            json.loads(reply.body)["probabilities"] == json.loads(reference.body)["probabilities"]
        )
    if "n_labels" in case.expect:
        assert len(json.loads(reply.body)["labels"]) == case.expect["n_labels"]
    if case.expect.get("no_secrets"):
        for secret in SECRETS:
            assert secret not in reply.body, reply
    assert_healthy(server)
