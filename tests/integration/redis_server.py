"""The ``redis_server`` fixture (registered in conftest): a private, real ``redis-server`` on a
free loopback port (bench/redis_server.py), stopped afterwards; and :func:`shipped_command`,
a deployment's own Redis command run here until its probe passes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.redis_server import RedisServer

__all__ = ["RedisServer", "redis_server", "shipped_command"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make system-deps)")
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def shipped_command(
    command: list[str], env: dict[str, str], probe: Callable[[], bool]
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` (a manifest's or compose file's, as its container runs it) until ``probe``
    (its readiness or health check, run here) passes; SIGTERM afterwards, as a kubelet or
    ``compose down`` sends it."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not probe():
            assert process.poll() is None, process.stdout.read() if process.stdout else b""
            assert time.monotonic() < deadline, "the probe never passed"
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
        if process.stdout:
            process.stdout.close()
