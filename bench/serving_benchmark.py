"""Load-test the service against the FastAPI/sklearn baseline on loopback -> performance.md.

In one run this starts, side by side, each on 1 worker process:
  * ``service-granian``: ``python -m serving`` (Litestar + msgspec + ONNX Runtime on granian),
  * ``service-uvicorn``: the same app on uvicorn (to choose the server by measurement),
  * ``baseline``: bench/baseline_fastapi.py (FastAPI + pydantic + sklearn predict_proba on uvicorn),
  * ``service-oip``: ``python -m serving`` again, loaded on the Open Inference Protocol route
    ``POST /v2/models/digits-classifier/infer`` with the same samples (OIP vs ``/predict``),
and drives each with wrk (1 thread, POST body from a Lua script) for 1-row and 1000-row
``/predict`` requests, bounded in time. It also records start-to-ready time and worker RSS.

Run: ``make bench`` (or ``python bench/serving_benchmark.py --duration 10``).
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
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
LUA_SCRIPT = Path(__file__).with_name("predict.lua")
READY_TIMEOUT = 60.0
# One compute thread per served process. OpenBLAS is limited inside the baseline with
# threadpoolctl (bench/baseline_fastapi.py), never through OPENBLAS_* variables: some
# machines set those for correctness, and the project leaves them as it finds them.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
ANALYSIS_MARKER = "<!-- analysis: hand-written, kept by make bench -->"
OIP_ROUTE = "/v2/models/digits-classifier/infer"
OIP_MIN_RATIO = 0.9
TARGETS = {
    "single_row_ratio": 6.0,
    "samples_per_s_1000": 150_000.0,
    "start_to_ready_s": 1.5,
    "rss_mb": 150.0,
}


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def samples_per_s(self, rows: int) -> float:
        return self.requests_per_s * rows


@dataclass
class TargetRun:
    name: str
    description: str
    start_to_ready_s: float = float("nan")
    rss_mb: list[float] = field(default_factory=list)
    loads: dict[int, LoadResult] = field(default_factory=dict)


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


def children(pid: int) -> list[int]:
    """Direct child PIDs of ``pid``."""
    return [child.pid for child in psutil.Process(pid).children()]


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB."""
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def worker_pids(process: subprocess.Popen[bytes], name: str) -> list[int]:
    """The processes that serve requests: granian's worker children, else the process itself."""
    if name in ("service-granian", "service-oip"):
        return children(process.pid) or [process.pid]
    return [process.pid]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    url: str, body: bytes, connections: int, duration: int, authorization: str = ""
) -> LoadResult:
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as handle:
        handle.write(body)
    try:
        result = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                str(LUA_SCRIPT),
                url,
            ],
            env={
                **os.environ,
                "BENCH_BODY_FILE": handle.name,
                "BENCH_AUTHORIZATION": authorization,
            },
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        )
    finally:
        Path(handle.name).unlink()
    return parse_wrk(result.stdout)


def _percentile_ms(out: str, percent: int) -> float:
    """A latency percentile from wrk's ``--latency`` table; NaN when wrk left the line out."""
    match = re.search(rf"^\s+{percent}%\s+(\S+)$", out, re.MULTILINE)
    return _ms(match.group(1)) if match else float("nan")


def parse_wrk(out: str) -> LoadResult:
    """Throughput, p50/p99 and errors from wrk's output (latency lines may be missing)."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError(f"unparseable wrk output:\n{out}")
    rps, total = float(rate.group(1)), int(count.group(1))
    p50, p99 = _percentile_ms(out, 50), _percentile_ms(out, 99)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return LoadResult(rps, p50, p99, total, errors)


def request_body(rows: int, route: str = "/predict") -> bytes:
    """The JSON body for ``route``; the same samples (seeded by ``rows``) for every route."""
    rng = np.random.default_rng(rows)
    samples = rng.integers(0, 17, size=(rows, 64)).tolist()
    if route == OIP_ROUTE:
        tensor = {
            "name": "pixels",
            "shape": [rows, 64],
            "datatype": "FP32",
            "data": [value for row in samples for value in row],
        }
        payload: dict[str, object] = {"inputs": [tensor]}
    else:
        payload = {"samples": samples}
    return json.dumps(payload, separators=(",", ":")).encode()


def route_for(name: str) -> str:
    return OIP_ROUTE if name == "service-oip" else "/predict"


def command_for(name: str, port: int) -> list[str]:
    python = sys.executable
    if name in ("service-granian", "service-oip"):
        return [python, "-m", "serving"]
    if name == "service-uvicorn":
        return [
            python, "-m", "uvicorn", "serving.app:app_from_env", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
    return [
        python, "-m", "uvicorn", "bench.baseline_fastapi:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


DESCRIPTIONS = {
    "service-granian": "this service: Litestar + msgspec + ONNX Runtime, granian, 1 worker",
    "service-uvicorn": "this service on uvicorn (server comparison), 1 worker",
    "baseline": "baseline: FastAPI + pydantic + sklearn predict_proba (joblib), uvicorn, 1 worker",
    "service-oip": f"this service on granian, 1 worker, Open Inference Protocol `POST {OIP_ROUTE}` "
    "(JSON, flat FP32 data, same samples as `/predict`)",
}


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    multiproc: Path


def start_target(name: str, log_dir: Path) -> tuple[Server, float]:
    """Start one target; return it and its start-to-ready seconds."""
    port = free_port()
    multiproc = Path(tempfile.mkdtemp(prefix="bench-prom-"))
    env = {
        **os.environ,
        **SINGLE_THREAD_ENV,
        "PYTHONPATH": str(REPO_ROOT),
        "DIGITS_PORT": str(port),
        "DIGITS_WORKERS": "1",
        "DIGITS_LOCK_FILE": str(REPO_ROOT / "dvc.lock"),
        "DIGITS_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    started = time.perf_counter()
    with (log_dir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            command_for(name, port), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(name, process, port, multiproc)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/ready", process, started)
    except BaseException:
        stop_target(server)
        raise
    return server, ready


def stop_target(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    shutil.rmtree(server.multiproc, ignore_errors=True)


def median_load(results: list[LoadResult]) -> LoadResult:
    """The round with the median throughput (its latencies come with it)."""
    ordered = sorted(results, key=lambda result: result.requests_per_s)
    chosen = ordered[len(ordered) // 2]
    return LoadResult(
        chosen.requests_per_s,
        chosen.p50_ms,
        chosen.p99_ms,
        sum(result.requests for result in results),
        sum(result.errors for result in results),
    )


def bench_all(
    names: tuple[str, ...], duration: int, rounds: int, rows_list: list[int], log_dir: Path
) -> dict[str, TargetRun]:
    """Start every target (idle ones use no CPU), then load them in interleaved rounds.

    Interleaving puts every target under the same background load, so the ratios stay
    meaningful on a shared machine; each cell reports the median round.
    """
    runs = {name: TargetRun(name, DESCRIPTIONS[name]) for name in names}
    servers: dict[str, Server] = {}
    try:
        for name in names:
            servers[name], runs[name].start_to_ready_s = start_target(name, log_dir)
        bodies = {
            (route, rows): request_body(rows, route)
            for route in {route_for(name) for name in names}
            for rows in rows_list
        }
        samples: dict[tuple[str, int], list[LoadResult]] = {}
        for round_index in range(rounds):
            for rows in rows_list:
                connections = 8 if rows == 1 else 2
                for name in names:
                    route = route_for(name)
                    url = f"http://127.0.0.1:{servers[name].port}{route}"
                    body = bodies[route, rows]
                    if round_index == 0:
                        run_wrk(url, body, connections, 1)  # warm-up, not recorded
                    result = run_wrk(url, body, connections, duration)
                    samples.setdefault((name, rows), []).append(result)
                    print(
                        f"round {round_index} {name:16s} rows={rows:5d} {result}", file=sys.stderr
                    )
        for (name, rows), results in samples.items():
            runs[name].loads[rows] = median_load(results)
        for name, server in servers.items():
            runs[name].rss_mb = [rss_mb(pid) for pid in worker_pids(server.process, name)]
    finally:
        for server in servers.values():
            stop_target(server)
    return runs


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def measured_commit() -> str:
    """The commit the numbers were measured at (``+changes`` when the tree is dirty)."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "serving", "bench")
    return f"{commit}+changes" if dirty else commit


def render(runs: dict[str, TargetRun], duration: int, rounds: int, argv: list[str]) -> str:
    service, uvicorn, baseline = runs["service-granian"], runs["service-uvicorn"], runs["baseline"]
    lines = [
        "# Serving performance",
        "",
        "Generated by `make bench` (`python bench/serving_benchmark.py "
        + " ".join(argv)
        + "`); do not edit by hand.",
        "",
        f"- Commit: `{measured_commit()}`",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        f"- Load: wrk, 1 thread, loopback, {duration} s per cell after a 1 s warm-up, "
        f"{rounds} interleaved rounds (all targets up at once, loaded one at a time, "
        "round-robin); each cell is the median round, errors summed over rounds; "
        "8 connections for 1-row requests, 2 for 1000-row requests; `POST /predict` with the "
        "same JSON body for every target (random integers 0..16, flat 64-pixel rows).",
        "- Every target runs 1 worker process with BLAS/OpenMP threads pinned to 1; the load "
        "generator shares the same machine, so absolute numbers are lower than on a "
        "dedicated host; the ratios are the point.",
        "- Server log level `warning` for all targets (no per-request access log line).",
        "",
        "## Throughput and latency",
        "",
        "| target | rows/request | req/s | samples/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs.values():
        for rows, load in run.loads.items():
            lines.append(
                f"| {run.name} | {rows} | {load.requests_per_s:,.0f} | "
                f"{load.samples_per_s(rows):,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
                f"{load.errors} |"
            )
    lines += ["", "Target descriptions:", ""]
    lines += [f"- `{run.name}`: {run.description}" for run in runs.values()]
    lines += [
        "",
        "## Ratios (service on granian / baseline)",
        "",
        "| rows/request | req/s ratio | p50 latency ratio (baseline / service) |",
        "| ---: | ---: | ---: |",
    ]
    for rows, load in service.loads.items():
        base = baseline.loads[rows]
        lines.append(
            f"| {rows} | {load.requests_per_s / base.requests_per_s:.1f}x | "
            f"{base.p50_ms / load.p50_ms:.1f}x |"
        )
    lines += [
        "",
        "## Server choice: granian vs uvicorn (same app, 1 worker)",
        "",
        "| rows/request | granian req/s | uvicorn req/s | granian / uvicorn |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for rows, load in service.loads.items():
        other = uvicorn.loads[rows]
        lines.append(
            f"| {rows} | {load.requests_per_s:,.0f} | {other.requests_per_s:,.0f} | "
            f"{load.requests_per_s / other.requests_per_s:.2f}x |"
        )
    lines += [
        "",
        "## Open Inference Protocol vs /predict (same service, same samples)",
        "",
        "| rows/request | /predict req/s | OIP infer req/s | OIP / predict |",
        "| ---: | ---: | ---: | ---: |",
    ]
    oip = runs["service-oip"]
    oip_ratios = {}
    for rows, load in service.loads.items():
        other = oip.loads[rows]
        oip_ratios[rows] = other.requests_per_s / load.requests_per_s
        lines.append(
            f"| {rows} | {load.requests_per_s:,.0f} | {other.requests_per_s:,.0f} | "
            f"{oip_ratios[rows]:.2f}x |"
        )
    lines += [
        "",
        "## Start-up and memory",
        "",
        "| target | start-to-ready s | RSS per worker MB (after load) |",
        "| --- | ---: | ---: |",
    ]
    for run in runs.values():
        rss = ", ".join(f"{value:.0f}" for value in run.rss_mb)
        lines.append(f"| {run.name} | {run.start_to_ready_s:.2f} | {rss} |")
    single_ratio = service.loads[1].requests_per_s / baseline.loads[1].requests_per_s
    samples_1000 = service.loads[1000].samples_per_s(1000)
    worst_rss = max(service.rss_mb)
    lines += [
        "",
        "Start-to-ready: from process start to the first 200 from `/ready` (the model is "
        "verified against dvc.lock and the ONNX session warmed before that).",
        "",
        "## Targets",
        "",
        "| target | goal | measured | status |",
        "| --- | --- | --- | --- |",
        f"| single-row throughput vs baseline | >= {TARGETS['single_row_ratio']:.0f}x | "
        f"{single_ratio:.1f}x | {_met(single_ratio >= TARGETS['single_row_ratio'])} |",
        f"| 1000-row samples/s per worker | >= {TARGETS['samples_per_s_1000']:,.0f} | "
        f"{samples_1000:,.0f} | {_met(samples_1000 >= TARGETS['samples_per_s_1000'])} |",
        f"| start-to-ready | <= {TARGETS['start_to_ready_s']} s | "
        f"{service.start_to_ready_s:.2f} s | "
        f"{_met(service.start_to_ready_s <= TARGETS['start_to_ready_s'])} |",
        f"| RSS per worker | <= {TARGETS['rss_mb']:.0f} MB | {worst_rss:.0f} MB | "
        f"{_met(worst_rss <= TARGETS['rss_mb'])} |",
        *(
            f"| OIP infer throughput vs /predict, {rows} row(s) | >= {OIP_MIN_RATIO:.2f}x | "
            f"{ratio:.2f}x | {_met(ratio >= OIP_MIN_RATIO)} |"
            for rows, ratio in oip_ratios.items()
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("serving_benchmark: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    log_dir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    names = ("service-granian", "service-uvicorn", "baseline", "service-oip")
    runs = bench_all(names, args.duration, args.rounds, [1, 1000], log_dir)
    shown_args = sys.argv[1:] if argv is None else argv
    text = render(runs, args.duration, args.rounds, shown_args)
    if args.output.exists():  # keep the hand-written analysis below the marker
        previous = args.output.read_text(encoding="utf-8")
        if ANALYSIS_MARKER in previous:
            text += "\n" + ANALYSIS_MARKER + previous.split(ANALYSIS_MARKER, 1)[1]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    print(f"server logs: {log_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
