"""A private, real ``redis-server`` (Debian package) on a free loopback port, from a temp-dir
config; the ``redis_server`` fixture (registered in conftest) stops it afterwards."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


class RedisServer:
    def __init__(self, directory: Path) -> None:
        from tests.integration.conftest import free_port  # conftest registers the fixture

        self.port = free_port()
        config = directory / "redis.conf"
        config.write_text(
            f'bind 127.0.0.1\nport {self.port}\ndir {directory}\nsave ""\n'
            "appendonly no\ndaemonize no\nprotected-mode yes\n"
        )
        self.process = subprocess.Popen(
            [str(shutil.which("redis-server")), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make system-deps)")
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()
