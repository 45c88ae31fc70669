"""SIGTERM lets an in-flight request complete before the server exits."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable

import pytest

from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed early: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def test_sigterm_drains_an_in_flight_request(serve: Callable[..., RunningServer]) -> None:
    server = serve(workers=2)
    body = json.dumps({"samples": [[float(i % 17) for i in range(64)]] * 1000}).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        # The request is in flight: headers and part of the body are on the wire.
        sock.sendall(head + body[:4096])
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None, "server exited with a request in flight"
        sock.sendall(body[4096:])
        status, payload = read_response(sock)
    assert status == 200
    assert len(json.loads(payload)["labels"]) == 1000
    assert server.process.wait(timeout=30) == 0
