"""Soak the service on loopback and record errors, p99 and RSS growth in docs/performance.md.

Starts ``python -m serving`` (2 workers by default) guarded as the Kubernetes manifests ship
it: API-key auth (every request carries a valid key), rate limits shared through a private
``redis-server`` (far above the load: they never refuse), decision records written and
``DIGITS_FEEDBACK=on`` (every decision indexed in that Redis). It warms it up, then
saturates it with wrk for ``--duration`` seconds (60 by default) using bench/soak.lua,
which rotates mixed bodies: 1-row ``/predict`` (flat and 8x8), a 32-row batch, a 4-row
``/explain`` and an 8-row Open Inference Protocol ``/v2/.../infer``. The RSS of the
server's processes (main process + workers, VmRSS from /proc) is sampled every second;
growth is end vs start of the measured window. The run fails (exit 1) on any error, any
5xx the server counted, a worker respawn, RSS growth of 5% or more, or a decision record
missing after the graceful stop (one per answered ``/predict``, ``/explain`` and OIP infer request).

The result replaces the text between ``<!-- soak:start -->`` and ``<!-- soak:end -->`` in
the output file (appended when the markers are missing), so other sections are kept.

Run: ``make soak`` (or ``python -m bench.soak --duration 60``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.redis_server import RedisServer
from bench.report import measured_commit
from bench.sections import write_section
from bench.targets import GUARDED_SCOPES, decision_records, guarded_env

REPO_ROOT = Path(__file__).resolve().parents[1]
LUA_SCRIPT = Path(__file__).with_name("soak.lua")
START_MARKER = "<!-- soak:start -->"
END_MARKER = "<!-- soak:end -->"
READY_TIMEOUT = 60.0
MAX_RSS_GROWTH = 0.05
ROW = [float((index * 7) % 17) for index in range(64)]
GRID = [ROW[row * 8 : row * 8 + 8] for row in range(8)]
MODEL_NAME = "digits-classifier"


def soak_bodies() -> list[tuple[str, str, dict[str, object]]]:
    """(label, URL path, JSON body) of the rotated requests."""
    oip: dict[str, object] = {
        "inputs": [{"name": "pixels", "shape": [8, 64], "datatype": "FP32", "data": ROW * 8}]
    }
    return [
        ("predict 1 row (flat)", "/predict", {"samples": [ROW]}),
        ("predict 1 row (8x8)", "/predict", {"samples": [GRID]}),
        ("predict 32 rows", "/predict", {"samples": [ROW] * 32}),
        ("explain 4 rows", "/explain", {"samples": [ROW] * 4}),
        ("OIP infer 8 rows", f"/v2/models/{MODEL_NAME}/infer", oip),
    ]


@dataclass
class SoakResult:
    duration_s: float
    requests: int
    errors: dict[str, int]
    server_5xx: int
    route_counts: dict[str, int]
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    rss_start_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    respawned: bool
    decided: int  # 2xx answers of the deciding routes, warm-up included (the server's count)
    records: int  # decision records on disk after the graceful stop

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values()) + self.server_5xx

    @property
    def rss_growth(self) -> float:
        return self.rss_end_mb / self.rss_start_mb - 1.0

    @property
    def passed(self) -> bool:
        return (
            self.total_errors == 0
            and not self.respawned
            and self.rss_growth < MAX_RSS_GROWTH
            and self.records == self.decided
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, authorization: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": authorization})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def child_pids(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (granian's worker processes)."""
    return sorted(child.pid for child in psutil.Process(pid).children())


def rss_mb(pids: list[int]) -> float:
    """Summed resident set size of the live processes among ``pids``, in MiB."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def start_server(
    workers: int, port: int, log_path: Path, guarded: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DIGITS_HOST": "127.0.0.1",
        "DIGITS_PORT": str(port),
        "DIGITS_WORKERS": str(workers),
        "DIGITS_LOCK_FILE": str(REPO_ROOT / "dvc.lock"),
        "DIGITS_LOG_LEVEL": "warning",
        "PYTHONPATH": str(REPO_ROOT),
        **guarded,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving"], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
    deadline = time.perf_counter() + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}: {log_path.read_text()}")
        try:
            ready = http_get(f"http://127.0.0.1:{port}/ready")[0] == 200
            if ready and len(child_pids(process.pid)) >= workers:
                return process
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"server not ready within {READY_TIMEOUT}s")


def run_wrk(
    port: int, bodies: str, seconds: float, threads: int, connections: int, authorization: str
) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found (Debian package wrk)")
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{port}",
    ]
    result = subprocess.run(
        command,
        env={**os.environ, "SOAK_BODIES": bodies, "SOAK_AUTHORIZATION": authorization},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    match = re.search(r"^SOAK_JSON (\{.*\})$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    summary: dict[str, float] = json.loads(match.group(1))
    return summary


def server_counts(port: int, authorization: str) -> dict[tuple[str, str], int]:
    """``http_requests_total`` by (route, status) as the server counted it (all workers)."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", authorization)
    if status != 200:
        raise SystemExit(f"/metrics answered {status}")
    counts: dict[tuple[str, str], int] = {}
    for line in body.decode().splitlines():
        if not line.startswith("http_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        key = (labels["route"], labels["status"])
        counts[key] = counts.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


DECIDING = ("/predict", "/explain", f"/v2/models/{MODEL_NAME}/infer", "/v2/models/{name}/infer")


def soak(
    duration: float, workers: int, threads: int, connections: int, warmup: float
) -> SoakResult:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="digits-soak-") as scratch:
        directory = Path(scratch)
        pairs = []
        for number, (_, path, body) in enumerate(soak_bodies()):
            body_file = directory / f"body-{number}.json"
            body_file.write_text(json.dumps(body), encoding="utf-8")
            pairs.append(f"{path}={body_file}")
        bodies = ";".join(pairs)
        from serving.access.keys import add_key

        key_file = directory / "keys.jsonl"
        authorization = "Bearer " + add_key(key_file, "soak", GUARDED_SCOPES)
        (directory / "redis").mkdir()
        redis = RedisServer(directory / "redis")
        guarded = guarded_env(directory, key_file) | {
            "DIGITS_RATE_LIMIT_REDIS_URL": redis.url,
            "DIGITS_FEEDBACK": "on",
        }
        try:
            process = start_server(workers, port, directory / "server.log", guarded)
            try:
                run_wrk(port, bodies, warmup, threads, connections, authorization)
                worker_pids = child_pids(process.pid)
                pids = [process.pid, *worker_pids]
                rss_start = rss_mb(pids)
                peak = rss_start
                stop = threading.Event()

                def sample() -> None:
                    nonlocal peak
                    while not stop.wait(1.0):
                        peak = max(peak, rss_mb(pids))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                before = server_counts(port, authorization)
                summary = run_wrk(port, bodies, duration, threads, connections, authorization)
                stop.set()
                sampler.join()
                rss_end = rss_mb(pids)
                respawned = child_pids(process.pid) != worker_pids
                after = server_counts(port, authorization)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        finally:
            redis.stop()
        records = decision_records(directory / "decisions")
    errors = {key: int(summary[key]) for key in ("connect", "read", "write", "status", "timeout")}
    delta = {key: count - before.get(key, 0) for key, count in after.items()}
    routes: dict[str, int] = {}
    for (route, status), count in delta.items():
        if count and route != "/metrics":
            routes[f"{route} {status}"] = count
    decided = sum(
        count
        for (route, status), count in after.items()
        if route in DECIDING and status.startswith("2")
    )
    return SoakResult(
        duration_s=summary["duration_us"] / 1e6,
        requests=int(summary["requests"]),
        errors=errors,
        server_5xx=sum(count for (_, status), count in delta.items() if status.startswith("5")),
        route_counts=dict(sorted(routes.items())),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        p999_ms=summary["p999_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        rss_peak_mb=max(peak, rss_end),
        respawned=respawned,
        decided=decided,
        records=records,
    )


def render(result: SoakResult, workers: int, threads: int, connections: int) -> str:
    labels = ", ".join(label for label, _, _ in soak_bodies())
    verdict = "PASS" if result.passed else "FAIL"
    errors = ", ".join(f"{key} {value}" for key, value in result.errors.items())
    lines = [
        START_MARKER,
        "## Soak",
        "",
        "Generated by `make soak` (bench/soak.py); do not edit by hand.",
        "",
        f"`python -m serving` with {workers} workers on 127.0.0.1, guarded as the Kubernetes "
        "manifests ship it (API-key auth, a valid key on every request; rate limits far above "
        "the load, shared through a private `redis-server`; decision records written; "
        "`DIGITS_FEEDBACK=on`), saturated by wrk "
        f"({threads} threads, {connections} keep-alive connections) for "
        f"{result.duration_s:.0f} s after a warm-up, rotating: {labels}. "
        f"Commit: `{measured_commit()}`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. RSS is the sum of VmRSS over the server's main "
        "process and workers (/proc), sampled every second.",
        "",
        "| Metric | Value |",
        "|---|---|",
        f"| Result | **{verdict}** (0 errors, no respawn, RSS growth < {MAX_RSS_GROWTH:.0%}, "
        "a decision record per decision) |",
        f"| Requests | {result.requests} ({result.requests / result.duration_s:.0f}/s) |",
        f"| Errors (wrk) | {sum(result.errors.values())} ({errors}) |",
        f"| 5xx counted by the server | {result.server_5xx} |",
        "| Requests by route and status (server) | "
        + ", ".join(f"`{key}` {count}" for key, count in result.route_counts.items())
        + " |",
        f"| Latency p50 / p99 / p99.9 / max | {result.p50_ms:.2f} / {result.p99_ms:.2f} / "
        f"{result.p999_ms:.2f} / {result.max_ms:.2f} ms |",
        f"| RSS start / end / peak | {result.rss_start_mb:.1f} / {result.rss_end_mb:.1f} / "
        f"{result.rss_peak_mb:.1f} MiB |",
        f"| RSS growth | {result.rss_growth:+.2%} |",
        f"| Worker respawned | {'yes' if result.respawned else 'no'} |",
        f"| Decisions answered (warm-up included) / records on disk after SIGTERM | "
        f"{result.decided} / {result.records} |",
        "",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "performance.md")
    args = parser.parse_args()
    result = soak(args.duration, args.workers, args.threads, args.connections, args.warmup)
    section = render(result, args.workers, args.threads, args.connections)
    write_section(args.output, section, START_MARKER, END_MARKER)
    print(section)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
