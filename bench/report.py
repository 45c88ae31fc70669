"""The top part of docs/performance.md from one ``make bench`` run (bench/serving_benchmark.py)."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.bodies import OIP_ROUTE, Pixels
from bench.cells import GUARDED, GUARDED_FEEDBACK, GUARDED_REDIS, MLSERVERS, Cell
from bench.load import LoadResult
from bench.targets import GUARDED_RATE_LIMIT, REPO_ROOT

ANALYSIS_MARKER = "<!-- analysis: hand-written, kept by make bench -->"
OIP_MIN_RATIO = 0.9
TARGETS = {
    "single_row_ratio": 6.0,
    "samples_per_s_1000": 150_000.0,
    "start_to_ready_s": 1.5,
    "rss_mb": 150.0,
    "guarded_vs_floor": 0.5,
    "guarded_vs_open": 0.95,
    "guarded_vs_mlserver_100": 4.0,
    "feedback_vs_guarded": 0.95,
}
DESCRIPTIONS = {
    "floor": "the raw server floor: bench/floor_app.py, an ASGI app that reads the body and "
    "answers a fixed JSON body (the shape and size of a one-row `/predict` answer) with no "
    "routing, validation or model; granian with `python -m serving`'s options (ASGI, uvloop, "
    "HTTP/1.1 only, no access log), 1 worker. Loaded with the same `/predict` request.",
    "service-granian": "this service, `python -m serving`: Litestar + msgspec + ONNX Runtime "
    "on granian + uvloop, 1 worker; authentication, rate limits and decision records off "
    "(the defaults). Loaded on `/predict` and on `POST " + OIP_ROUTE + "` (OIP).",
    GUARDED: "the same service guarded, as `make bench-auth` starts it: `DIGITS_AUTH=api-key` "
    "(a valid Bearer key on every request), `DIGITS_RATE_LIMIT` and "
    f"`DIGITS_EXPLAIN_RATE_LIMIT` `{GUARDED_RATE_LIMIT}` (never refuses), decision records "
    "written (`DIGITS_DECISION_LOG_DIR`); 1 worker.",
    GUARDED_REDIS: "the guarded service with its rate limits in a private `redis-server` on "
    "loopback (`DIGITS_RATE_LIMIT_REDIS_URL`; leases keep most checks local); 1 worker.",
    GUARDED_FEEDBACK: "the same, with `DIGITS_FEEDBACK=on`: `POST /feedback` served and every "
    "recorded decision indexed in the same Redis (one pipelined `HSET` per 256 request ids "
    "every 200 ms, off the request path; serving/feedback/index.py); 1 worker.",
    "service-uvicorn": "this service's app on uvicorn (server comparison), 1 worker.",
    "baseline": "the original brief's stack: bench/baseline_fastapi.py, FastAPI + pydantic + "
    "scikit-learn `predict_proba` on models/model.joblib, uvicorn, 1 worker.",
    "mlserver-pw0": "MLServer 1.7.1 with its scikit-learn runtime (mlserver-sklearn) serving "
    "models/model.joblib over the Open Inference Protocol (`POST " + OIP_ROUTE + "`, one FP32 "
    "tensor `[rows, 64]`, asking for the `predict` and `predict_proba` outputs: labels and "
    "probabilities, what `/predict` answers), from `.venv-mlserver` "
    "(requirements/mlserver.lock); `parallel_workers: 0`: inference in the HTTP process "
    "(uvicorn + uvloop, 1 process). Configured for its best throughput "
    "(bench/mlserver_anchor.py): `debug: false` (no access log), `metrics_endpoint: null` "
    "(no metrics server, no metrics middleware), `gzip_enabled: false`, no adaptive batching "
    "(default), BLAS/OpenMP 1 thread (bench/mlserver_launch.py). Its gRPC server cannot be "
    "turned off in 1.7.1: it listens on a loopback port and idles.",
    "mlserver-pw1": "the same MLServer with `parallel_workers: 1` (its default): the HTTP "
    "process decodes and encodes, one spawned process runs the model (2 processes).",
}


@dataclass
class Run:
    duration: int
    rounds: int
    cells: list[Cell]
    loads: dict[Cell, LoadResult] = field(default_factory=dict)
    start_to_ready_s: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    agreement: dict[str, tuple[int, int]] = field(default_factory=dict)
    decision_records: int = 0
    cpus: str = ""  # bench/cpus.py: which CPUs the servers and wrk ran on

    def rps(self, target: str, rows: int, pixels: Pixels = "int", route: str = "/predict") -> float:
        return self.loads[Cell(target, route, pixels, rows)].requests_per_s

    def best_mlserver(self, rows: int) -> tuple[str, float]:
        """The faster MLServer configuration at ``rows`` (float pixels) and its req/s."""
        return max(
            ((name, self.rps(name, rows, "float", OIP_ROUTE)) for name in MLSERVERS),
            key=lambda pair: pair[1],
        )


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


def _header(run: Run, argv: list[str]) -> list[str]:
    return [
        "# Serving performance",
        "",
        "Generated by `make bench` (`python -m bench.serving_benchmark "
        + " ".join(argv)
        + "`); do not edit by hand.",
        "",
        f"- Commit: `{measured_commit()}`",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        f"- Load: wrk, 1 thread, loopback, {run.duration} s per cell after a 1 s warm-up, "
        f"{run.rounds} interleaved rounds (all targets up at once, loaded one cell at a time, "
        "round-robin); each cell is the median round, errors summed over rounds; "
        "8 connections for 1-row requests, 4 for 100-row and 2 for 1000-row requests.",
        "- Bodies: the same samples for every target at a given row count. `int`: random "
        "integers 0..16 written as integers (`13`); `float`: the same values written as "
        "floats (`13.0`), an eighth of them moved up by 0.5 (`7.5`). `/predict` takes "
        '`{"samples": [[64 pixels], ...]}`, OIP infer one FP32 `pixels` tensor `[rows, 64]` '
        "with flat data.",
        "- Every target runs 1 worker process with BLAS/OpenMP threads pinned to 1. CPUs: "
        f"{run.cpus}. Absolute numbers depend on the machine; the ratios are the point.",
        "- Server log level `warning` for all targets (no per-request access log line).",
        "",
        "## What each target is",
        "",
        *(f"- `{name}`: {text}" for name, text in DESCRIPTIONS.items()),
        f"- Decision records written by `{GUARDED}` in this run: {run.decision_records:,}.",
        "",
        "Label check before the load: the labels each MLServer answers against the labels "
        "`service-granian` answers on `/predict` for the same 100- and 1000-row bodies "
        "(integer and float pixels):",
        "",
        "| target | rows compared | same label |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {total:,} | {same:,} |" for name, (same, total) in run.agreement.items()),
        "",
    ]


def _throughput(run: Run) -> list[str]:
    lines = [
        "## Throughput and latency",
        "",
        "| target | request | rows/request | req/s | samples/s | p50 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in sorted(run.loads, key=lambda cell: (cell.rows, run.cells.index(cell))):
        load = run.loads[cell]
        lines.append(
            f"| {cell.target} | {cell.request} | {cell.rows} | {load.requests_per_s:,.0f} | "
            f"{load.samples_per_s(cell.rows):,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
            f"{load.errors} |"
        )
    return [*lines, ""]


def _anchors(run: Run) -> list[str]:
    floor_rps = run.rps("floor", 1)
    lines = [
        "## Anchors",
        "",
        "### Single row: guarded service vs the floor and the open service",
        "",
        "| pixels | floor req/s | open req/s | guarded req/s | guarded / floor | guarded / open |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for pixels in ("int", "float"):
        open_, guarded = run.rps("service-granian", 1, pixels), run.rps(GUARDED, 1, pixels)
        lines.append(
            f"| {pixels} | {floor_rps:,.0f} | {open_:,.0f} | {guarded:,.0f} | "
            f"{guarded / floor_rps:.2f}x | {guarded / open_:.2f}x |"
        )
    best, best_rps = run.best_mlserver(100)
    lines += [
        "",
        "The floor gets the 1-row integer body (it reads and ignores it).",
        "",
        "### 100 rows: guarded service vs MLServer (float pixels)",
        "",
        f"MLServer's faster configuration in this run: `{best}`.",
        "",
        "| guarded request | guarded req/s | mlserver-pw0 req/s | mlserver-pw1 req/s | "
        "guarded / faster MLServer |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for route in ("/predict", OIP_ROUTE):
        guarded = run.rps(GUARDED, 100, "float", route)
        lines.append(
            f"| {Cell(GUARDED, route, 'float', 100).request} | {guarded:,.0f} | "
            + " | ".join(f"{run.rps(name, 100, 'float', OIP_ROUTE):,.0f}" for name in MLSERVERS)
            + f" | {guarded / best_rps:.2f}x |"
        )
    without, with_feedback = run.rps(GUARDED_REDIS, 1), run.rps(GUARDED_FEEDBACK, 1)
    lines += [
        "",
        "### Feedback: guarded with and without `DIGITS_FEEDBACK=on` (same Redis)",
        "",
        "| rows/request | without feedback req/s | with feedback req/s | with / without |",
        "| ---: | ---: | ---: | ---: |",
        f"| 1 | {without:,.0f} | {with_feedback:,.0f} | {with_feedback / without:.2f}x |",
    ]
    one_best, one_rps = run.best_mlserver(1)
    lines += [
        "",
        f"At 1 row the faster MLServer (`{one_best}`) answers {one_rps:,.0f} req/s; the "
        f"guarded service {run.rps(GUARDED, 1, 'float'):,.0f} (float pixels).",
        "",
    ]
    return lines


def _comparisons(run: Run) -> list[str]:
    lines = [
        "## Ratios (service on granian / baseline)",
        "",
        "| rows/request | req/s ratio | p50 latency ratio (baseline / service) |",
        "| ---: | ---: | ---: |",
    ]
    for rows in (1, 1000):
        load = run.loads[Cell("service-granian", "/predict", "int", rows)]
        base = run.loads[Cell("baseline", "/predict", "int", rows)]
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
    for rows in (1, 1000):
        granian, other = run.rps("service-granian", rows), run.rps("service-uvicorn", rows)
        lines.append(f"| {rows} | {granian:,.0f} | {other:,.0f} | {granian / other:.2f}x |")
    lines += [
        "",
        "## Open Inference Protocol vs /predict (same service, same samples, integer pixels)",
        "",
        "| rows/request | /predict req/s | OIP infer req/s | OIP / predict |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for rows in (1, 1000):
        predict = run.rps("service-granian", rows)
        oip = run.rps("service-granian", rows, "int", OIP_ROUTE)
        lines.append(f"| {rows} | {predict:,.0f} | {oip:,.0f} | {oip / predict:.2f}x |")
    lines += [
        "",
        "## Integer vs float pixels (same service, `/predict`)",
        "",
        "| target | rows/request | int req/s | float req/s | float / int |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    pairs = (("service-granian", 1), (GUARDED, 1), (GUARDED, 100), ("service-granian", 1000))
    for target, rows in pairs:
        ints, floats = run.rps(target, rows), run.rps(target, rows, "float")
        lines.append(f"| {target} | {rows} | {ints:,.0f} | {floats:,.0f} | {floats / ints:.2f}x |")
    lines += [
        "",
        "## Start-up and memory",
        "",
        "| target | start-to-ready s | RSS per worker MB (after load) | "
        "with its child processes MB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, ready in run.start_to_ready_s.items():
        own = ", ".join(f"{value:.0f}" for value, _ in run.rss_mb[name])
        tree = ", ".join(f"{value:.0f}" for _, value in run.rss_mb[name])
        lines.append(f"| {name} | {ready:.2f} | {own} | {tree} |")
    lines += [
        "",
        "Start-to-ready: from process start to the first 200 from `/ready` (the service "
        "verifies the model against dvc.lock and warms the ONNX session first; MLServer: its "
        "model's `/v2/models/digits-classifier/ready`). RSS per worker: each granian worker "
        "process, the other targets' started process; the last column adds the processes it "
        "started (the guarded worker's decision encoder; mlserver-pw1's inference process and "
        "multiprocessing's resource tracker). The RSS target is checked on that column.",
        "",
    ]
    return lines


def _targets(run: Run) -> list[str]:
    rows = []

    def check(label: str, goal: str, shown: str, ok: bool) -> None:
        rows.append(f"| {label} | {goal} | {shown} | {_met(ok)} |")

    single = run.rps("service-granian", 1) / run.rps("baseline", 1)
    check("single-row throughput vs baseline", f">= {TARGETS['single_row_ratio']:.0f}x",
          f"{single:.1f}x", single >= TARGETS["single_row_ratio"])  # fmt: skip
    samples = run.rps("service-granian", 1000) * 1000
    check("1000-row samples/s per worker", f">= {TARGETS['samples_per_s_1000']:,.0f}",
          f"{samples:,.0f}", samples >= TARGETS["samples_per_s_1000"])  # fmt: skip
    for pixels in ("int", "float"):
        guarded = run.rps(GUARDED, 1, pixels)
        ratio = guarded / run.rps("floor", 1)
        goal = TARGETS["guarded_vs_floor"]
        check(f"guarded single-row vs floor, {pixels} pixels", f">= {goal:.2f}x",
              f"{ratio:.2f}x", ratio >= goal)  # fmt: skip
        ratio = guarded / run.rps("service-granian", 1, pixels)
        goal = TARGETS["guarded_vs_open"]
        check(f"guarded single-row vs open (same run), {pixels} pixels", f">= {goal:.2f}x",
              f"{ratio:.2f}x", ratio >= goal)  # fmt: skip
    best, best_rps = run.best_mlserver(100)
    for route in ("/predict", OIP_ROUTE):
        ratio = run.rps(GUARDED, 100, "float", route) / best_rps
        goal = TARGETS["guarded_vs_mlserver_100"]
        name = Cell(GUARDED, route, "float", 100).request
        check(f"guarded 100-row vs MLServer ({best}), {name}", f">= {goal:.0f}x",
              f"{ratio:.2f}x", ratio >= goal)  # fmt: skip
    ratio = run.rps(GUARDED_FEEDBACK, 1) / run.rps(GUARDED_REDIS, 1)
    goal = TARGETS["feedback_vs_guarded"]
    check("guarded single-row with feedback vs without (same Redis)", f">= {goal:.2f}x",
          f"{ratio:.2f}x", ratio >= goal)  # fmt: skip
    for name in ("service-granian", GUARDED):
        ready = run.start_to_ready_s[name]
        check(f"start-to-ready, {name}", f"<= {TARGETS['start_to_ready_s']} s",
              f"{ready:.2f} s", ready <= TARGETS["start_to_ready_s"])  # fmt: skip
        worst = max(tree for _, tree in run.rss_mb[name])
        check(f"RSS per worker with its child processes, {name}",
              f"<= {TARGETS['rss_mb']:.0f} MB", f"{worst:.0f} MB",
              worst <= TARGETS["rss_mb"])  # fmt: skip
    for rows_per in (1, 1000):
        ratio = run.rps("service-granian", rows_per, "int", OIP_ROUTE) / run.rps(
            "service-granian", rows_per
        )
        check(f"OIP infer throughput vs /predict, {rows_per} row(s)",
              f">= {OIP_MIN_RATIO:.2f}x", f"{ratio:.2f}x", ratio >= OIP_MIN_RATIO)  # fmt: skip
    return [
        "## Targets",
        "",
        "| target | goal | measured | status |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def render(run: Run, argv: list[str]) -> str:
    sections = (
        _header(run, argv), _throughput(run), _anchors(run), _comparisons(run), _targets(run)
    )  # fmt: skip
    return "\n".join(line for section in sections for line in section)


def write(output: Path, text: str) -> None:
    """Write ``text``, keeping the hand-written analysis below the marker (atomic write)."""
    if output.exists():
        previous = output.read_text(encoding="utf-8")
        if ANALYSIS_MARKER in previous:
            text += "\n" + ANALYSIS_MARKER + previous.split(ANALYSIS_MARKER, 1)[1]
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(output)
