"""A private, real ``redis-server`` (Debian package) on a free loopback port, from a config
in a temp directory: the shared store of the benchmark's Redis-backed targets, and of the
tests' ``redis_server`` fixture (tests/integration/redis_server.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """Started at construction (ready to answer), stopped by :meth:`stop`."""

    def __init__(self, directory: Path, prefix: Sequence[str] = ()) -> None:
        """``prefix``: a command that runs ``redis-server`` (bench/cpus.py's ``taskset``)."""
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (make system-deps)")
        self.port = _free_port()
        config = directory / "redis.conf"
        config.write_text(
            f'bind 127.0.0.1\nport {self.port}\ndir {directory}\nsave ""\n'
            "appendonly no\ndaemonize no\nprotected-mode yes\n"
        )
        self.process = subprocess.Popen(
            [*prefix, executable, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
