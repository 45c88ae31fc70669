"""The ``redis_server`` fixture (registered in conftest): a private, real ``redis-server`` on a
free loopback port (bench/redis_server.py), stopped afterwards."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.redis_server import RedisServer

__all__ = ["RedisServer", "redis_server"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make system-deps)")
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()
