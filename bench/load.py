"""wrk as the load generator: one bounded run, its parsed result, the median of rounds."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("predict.lua")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def samples_per_s(self, rows: int) -> float:
        return self.requests_per_s * rows


def connections_for(rows: int) -> int:
    """wrk connections per cell: 8 for single rows, 4 up to 100 rows, 2 above."""
    return 8 if rows == 1 else 4 if rows <= 100 else 2


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    url: str,
    body: bytes,
    connections: int,
    duration: int,
    authorization: str = "",
    prefix: Sequence[str] = (),
) -> LoadResult:
    """POST ``body`` to ``url`` for ``duration`` seconds (wrk, 1 thread, after ``prefix``:
    bench/cpus.py)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as handle:
        handle.write(body)
    try:
        result = subprocess.run(
            [
                *prefix,
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
