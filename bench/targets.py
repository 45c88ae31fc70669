"""The servers a benchmark loads: how each is started, when it is ready, what it costs.

Every target runs 1 worker process with BLAS/OpenMP threads pinned to 1, logs at
``warning`` (no access log line per request), and listens on its own loopback port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 60.0
# One compute thread per served process. OpenBLAS is limited inside the baseline and
# MLServer with threadpoolctl (bench/baseline_fastapi.py, bench/mlserver_launch.py), never
# through OPENBLAS_* variables: some machines set those for correctness, and the project
# leaves them as it finds them.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# The guarded service: every request carries a valid API key, a rate limit far above the
# load (it never refuses) and decision records written (bench/access_benchmark.py too).
GUARDED_RATE_LIMIT = "100000000/minute"
GUARDED_SCOPES = ["predict", "explain", "read"]


@dataclass
class Target:
    name: str
    description: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/ready"
    cwd: Path = REPO_ROOT
    # granian: the requests are served by the started process's worker children.
    granian: bool = False


@dataclass
class Server:
    target: Target
    process: subprocess.Popen[bytes]
    start_to_ready_s: float

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.target.port}{route}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], started: float) -> float:
    """Seconds from ``started`` until ``url`` answers 200."""
    while time.perf_counter() - started < READY_TIMEOUT:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url}: not ready within {READY_TIMEOUT}s")


def base_env(work: Path) -> dict[str, str]:
    """The environment every target starts with (one Prometheus directory per target)."""
    return {
        **os.environ,
        **SINGLE_THREAD_ENV,
        "PYTHONPATH": str(REPO_ROOT),
        "DIGITS_LOCK_FILE": str(REPO_ROOT / "dvc.lock"),
        "DIGITS_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-prom-", dir=work),
    }


def guarded_env(work: Path, key_file: Path) -> dict[str, str]:
    """API-key auth, a rate limit that never triggers, decision records under ``work``."""
    return {
        "DIGITS_AUTH": "api-key",
        "DIGITS_API_KEYS_FILE": str(key_file),
        "DIGITS_RATE_LIMIT": GUARDED_RATE_LIMIT,
        "DIGITS_EXPLAIN_RATE_LIMIT": GUARDED_RATE_LIMIT,
        "DIGITS_DECISION_LOG_DIR": str(work / "decisions"),
    }


def decision_records(directory: Path) -> int:
    """Decision records written under ``directory`` (``decisions-*.jsonl``, rotated files
    too; not the feedback files beside them)."""
    total = 0
    for path in directory.glob("decisions-*.jsonl"):
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                total += chunk.count(b"\n")
    return total


def service(name: str, description: str, work: Path, extra: dict[str, str]) -> Target:
    """``python -m serving`` (granian, 1 worker) with ``extra`` settings."""
    port = free_port()
    env = base_env(work) | {"DIGITS_PORT": str(port), "DIGITS_WORKERS": "1"} | extra
    return Target(name, description, [sys.executable, "-m", "serving"], port, env, granian=True)


def uvicorn(name: str, description: str, app: str, work: Path, factory: bool = False) -> Target:
    """``app`` on uvicorn, 1 worker (in the started process)."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    if factory:
        command.append("--factory")
    env = base_env(work) | {"DIGITS_PORT": str(port), "DIGITS_WORKERS": "1"}
    return Target(name, description, command, port, env)


def floor(name: str, description: str, work: Path) -> Target:
    """bench/floor_app.py on granian + uvloop, 1 worker."""
    port = free_port()
    command = [sys.executable, "-m", "bench.floor_app", "--port", str(port)]
    return Target(name, description, command, port, base_env(work), granian=True)


def start(target: Target, log_dir: Path, prefix: Sequence[str] = ()) -> Server:
    """Start ``target`` (after ``prefix``: bench/cpus.py) and wait until it is ready
    (start-to-ready is measured)."""
    started = time.perf_counter()
    with (log_dir / f"{target.name}.log").open("wb") as log:
        process = subprocess.Popen(
            [*prefix, *target.command],
            cwd=target.cwd,
            env=target.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = wait_ready(f"http://127.0.0.1:{target.port}{target.ready_path}", process, started)
    except BaseException:
        stop(process)
        raise
    return Server(target, process, ready)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 2**20


def worker_rss_mb(server: Server) -> list[tuple[float, float]]:
    """Per worker, RSS in MiB of its process and of its process with every process it started
    (granian: each worker child, whose children are e.g. the guarded service's decision
    encoder; the other targets: the started process)."""
    root = psutil.Process(server.process.pid)
    workers = (root.children() if server.target.granian else []) or [root]
    return [
        (_rss_mb(worker), sum(map(_rss_mb, [worker, *worker.children(recursive=True)])))
        for worker in workers
    ]
