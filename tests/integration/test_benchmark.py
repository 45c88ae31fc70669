"""The serving benchmark (`make bench`) runs end to end in the suite, briefly: every target
answers without errors and the service stays within its memory budget.

Throughput is not asserted here: a one-second run on a shared machine measures the machine
as much as the service (no timed tests). `make bench` records the throughput ratios against
the baseline of the same run in docs/performance.md. This run writes to a temporary file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

# serial: it loads the whole machine; its error counts and RSS must be the service's alone.
pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(300)]

TARGETS = ("service-granian", "service-uvicorn", "baseline", "service-oip")
MAX_SERVICE_RSS_MB = 150.0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: run `make system-deps`")
    output = tmp_path_factory.mktemp("bench") / "performance.md"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "serving_benchmark.py"),
            "--duration",
            "1",
            "--rounds",
            "1",
            "--output",
            str(output),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return output.read_text(encoding="utf-8")


def table_rows(report: str, heading: str) -> list[list[str]]:
    section = report.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_benchmark_serves_every_target_without_errors(report: str) -> None:
    rows = table_rows(report, "Throughput and latency")
    assert {(row[0], row[1]) for row in rows} == {(t, n) for t in TARGETS for n in ("1", "1000")}
    for target, _, requests_per_s, *_, errors in rows:
        assert float(requests_per_s.replace(",", "")) > 0, target
        assert errors == "0", target


def test_service_stays_within_its_memory_budget(report: str) -> None:
    ratios = {row[0]: row[1] for row in table_rows(report, "Ratios")}
    assert set(ratios) >= {"1", "1000"}, ratios  # the ratios are computed and reported
    memory = {row[0]: row[2] for row in table_rows(report, "Start-up and memory")}
    service_rss = [float(value) for value in memory["service-granian"].split(",")]
    assert service_rss
    assert max(service_rss) <= MAX_SERVICE_RSS_MB, memory
    assert re.search(r"^\| RSS per worker \| <= 150 MB \| \d+ MB \| met \|$", report, re.MULTILINE)
