"""A bounded closed-loop HTTP load generator for integration tests (threads, http.client).

Each connection is one thread sending requests back to back until the time is up or a
stop event is set; connection-level failures are recorded (exception type) and the
thread reconnects. Also: the server's worker pids and their summed RSS from ``/proc``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psutil

ROW = [float((index * 7) % 17) for index in range(64)]
MIXED_BODIES: list[tuple[str, bytes]] = [
    ("/predict", json.dumps({"samples": [ROW]}).encode()),
    ("/predict", json.dumps({"samples": [ROW] * 32}).encode()),
    ("/explain", json.dumps({"samples": [ROW] * 4}).encode()),
    (
        "/predict",
        json.dumps({"samples": [[ROW[row * 8 : row * 8 + 8] for row in range(8)]]}).encode(),
    ),
    (
        "/v2/models/digits-classifier/infer",
        json.dumps(
            {"inputs": [{"name": "pixels", "shape": [8, 64], "datatype": "FP32", "data": ROW * 8}]}
        ).encode(),
    ),
]


@dataclass
class LoadResult:
    """Statuses of answered requests, connection errors and per-request latencies (s)."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    truncated: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return sum(self.errors.values()) + self.truncated

    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


def _worker(
    port: int,
    bodies: list[tuple[str, bytes]],
    offset: int,
    deadline: float,
    stop: threading.Event,
    keep_alive: bool,
    result: LoadResult,
    pause: float = 0.0,
) -> None:
    headers = {"Content-Type": "application/json"}
    if not keep_alive:
        headers["Connection"] = "close"
    connection: http.client.HTTPConnection | None = None
    index = offset
    while time.perf_counter() < deadline and not stop.is_set():
        path, body = bodies[index % len(bodies)]
        index += 1
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            # No response byte arrived: refused, or reset before the server answered.
            with result.lock:
                result.errors[type(exc).__name__] += 1
            connection.close()
            connection = None
            time.sleep(0.01)
            continue
        status, broken = response.status, False
        try:
            payload = response.read()
            complete = len(payload) == int(response.headers.get("content-length", len(payload)))
        except (OSError, http.client.HTTPException):
            # The response started and was cut off: a truncated answer.
            complete, broken = False, True
        elapsed = time.perf_counter() - started
        with result.lock:
            result.statuses[status] += 1
            result.latencies.append(elapsed)
            if not complete:
                result.truncated += 1
        if broken or not keep_alive or response.will_close:
            connection.close()
            connection = None
        if pause:
            time.sleep(pause)
    if connection is not None:
        connection.close()


class Load:
    """Start ``connections`` client threads in the background; ``stop()`` joins them."""

    def __init__(
        self,
        port: int,
        connections: int,
        seconds: float,
        bodies: list[tuple[str, bytes]] | None = None,
        keep_alive: bool = True,
        pause: float = 0.0,
    ) -> None:
        """``pause``: seconds each connection waits after an answer (a bounded request rate)."""
        self.result = LoadResult()
        self._stop = threading.Event()
        deadline = time.perf_counter() + seconds
        self._threads = [
            threading.Thread(
                target=_worker,
                args=(
                    port,
                    bodies or MIXED_BODIES,
                    number,
                    deadline,
                    self._stop,
                    keep_alive,
                    self.result,
                    pause,
                ),
                daemon=True,
            )
            for number in range(connections)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> LoadResult:
        self._stop.set()
        return self.wait(timeout)

    def wait(self, timeout: float = 120.0) -> LoadResult:
        for thread in self._threads:
            thread.join(timeout)
        return self.result


def child_pids(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (granian's worker processes of the server)."""
    return sorted(child.pid for child in psutil.Process(pid).children())


def rss_bytes(pids: list[int]) -> int:
    """Sum of the resident set sizes of the live processes among ``pids``."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (fraction in 0..1)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]
