"""Start the real service (`python -m serving`) on a free loopback port, wait for /ready, stop it.

Reusable by any integration test: ``start_server(env, ...)`` / ``stop_server(server)``,
or the ``serve`` fixture factory, which stops every server it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.redis_server import redis_server  # noqa: F401 - a fixture

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class RunningServer:
    """A ``python -m serving`` process and where to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    seconds_to_ready: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET (4xx/5xx are returned, not raised)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def http_post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Status and body of a JSON POST (4xx/5xx are returned, not raised)."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def start_server(
    env: Mapping[str, str] | None = None,
    *,
    workers: int = 2,
    log_dir: Path,
    expect_ready: bool = True,
    cwd: Path = REPO_ROOT,
    port: int | None = None,
) -> RunningServer:
    """Start ``python -m serving`` with ``env`` on top of ours; wait for /ready (200, or 503 when
    ``expect_ready`` is false, i.e. the service is up but refuses to serve). ``port``: a given
    one (a replacement behind a load balancer), else a free one."""
    port = free_port() if port is None else port
    # A multiprocess metrics directory set in this (test) process must not leak into the
    # server: the launcher wipes it at start, which would erase another server's metrics.
    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    full_env = {
        **inherited,
        "DIGITS_HOST": "127.0.0.1",
        "DIGITS_PORT": str(port),
        "DIGITS_WORKERS": str(workers),
        "DIGITS_LOCK_FILE": str(REPO_ROOT / "dvc.lock"),
        "PYTHONPATH": str(REPO_ROOT),
        **(env or {}),
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    started = time.perf_counter()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving"],
            cwd=cwd,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process, port, log_path, seconds_to_ready=float("nan"))
    wanted = 200 if expect_ready else 503
    deadline = started + READY_TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_text()}")
        try:
            status, body = http_get(f"{server.base_url}/ready", timeout=1.0)
        except OSError:
            time.sleep(0.02)
            continue
        if status == wanted:
            server.seconds_to_ready = time.perf_counter() - started
            if expect_ready and workers > 1:
                try:
                    _wait_for_workers(server, workers, deadline)
                except RuntimeError:
                    stop_server(server)  # do not leak the process when the caller gets no handle
                    raise
            return server
        if status == 200 and not expect_ready:
            stop_server(server)
            raise RuntimeError(f"server became ready, expected a refusal: {body!r}")
        time.sleep(0.02)
    stop_server(server)
    raise RuntimeError(f"server not ready within {READY_TIMEOUT_SECONDS}s:\n{server.log_text()}")


def _wait_for_workers(server: RunningServer, workers: int, deadline: float) -> None:
    """Wait until every worker logged that its model is ready."""
    while time.perf_counter() < deadline:
        ready_lines = [
            line
            for line in server.log_text().splitlines()
            if line.startswith("{") and json.loads(line).get("msg") == "model ready"
        ]
        if len(ready_lines) >= workers:
            return
        time.sleep(0.02)
    raise RuntimeError(f"not all {workers} workers became ready:\n{server.log_text()}")


def stop_server(server: RunningServer, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
    """SIGTERM the server and wait for it; SIGKILL if it does not exit in time."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    return int(process.returncode)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Factory fixture: ``serve(env, workers=2, expect_ready=True)``; stops servers afterwards."""
    servers: list[RunningServer] = []

    def _serve(env: Mapping[str, str] | None = None, **kwargs: object) -> RunningServer:
        server = start_server(env, log_dir=tmp_path / "logs", **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield _serve
    for server in servers:
        stop_server(server)
