"""The serving benchmark (`make bench`) runs end to end in the suite, briefly: every target,
the anchors included (the granian floor and MLServer from its own venv), answers without
errors, MLServer answers the service's labels, and the service stays within its memory
budget.

Throughput is not asserted here: a one-second run on a shared machine measures the machine
as much as the service (no timed tests). `make bench` records the ratios against the
anchors of the same run in docs/performance.md. This run writes to a temporary file. The
MLServer venv is made by the Makefile target `make bench` depends on (`make venv-mlserver`,
a no-op when its lock has not changed), so the suite runs the benchmark as `make bench` does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TARGETS = {
    "floor",
    "service-granian",
    "service-guarded",
    "service-guarded-redis",
    "service-guarded-feedback",
    "service-uvicorn",
    "baseline",
    "mlserver-pw0",
    "mlserver-pw1",
}
MAX_SERVICE_RSS_MB = 150.0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: run `make system-deps`")
    venv = subprocess.run(
        ["make", "--no-print-directory", "venv-mlserver"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert venv.returncode == 0, venv.stdout[-2000:] + venv.stderr[-4000:]
    output = tmp_path_factory.mktemp("bench") / "performance.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.serving_benchmark", "--duration", "1", "--rounds", "1",
         "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return output.read_text(encoding="utf-8")


def table_rows(report: str, heading: str) -> list[list[str]]:
    section = report.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_benchmark_serves_every_target_without_errors(report: str) -> None:
    rows = table_rows(report, "Throughput and latency")
    assert {row[0] for row in rows} == TARGETS
    cells = {(row[0], row[1], row[2]) for row in rows}
    assert ("floor", "/predict, int", "1") in cells
    for mlserver in ("mlserver-pw0", "mlserver-pw1"):
        assert (mlserver, "OIP infer, float", "100") in cells
    assert ("service-guarded", "/predict, float", "100") in cells
    assert ("service-guarded", "OIP infer, float", "100") in cells
    for target, _, _, requests_per_s, *_, errors in rows:
        assert float(requests_per_s.replace(",", "")) > 0, target
        assert errors == "0", target


def test_mlserver_answers_the_services_labels(report: str) -> None:
    agreement = {row[0]: (row[1], row[2]) for row in table_rows(report, "What each target is")}
    assert set(agreement) == {"mlserver-pw0", "mlserver-pw1"}
    for compared, same in agreement.values():
        assert int(compared.replace(",", "")) >= 1000
        assert same == compared


def test_every_target_is_judged_against_the_anchors_of_the_run(report: str) -> None:
    goals = {row[0]: row[3] for row in table_rows(report, "Targets")}
    assert all(status in ("met", "**missed**") for status in goals.values()), goals
    for pixels in ("int", "float"):
        assert f"guarded single-row vs floor, {pixels} pixels" in goals
        assert f"guarded single-row vs open (same run), {pixels} pixels" in goals
    assert any(label.startswith("guarded 100-row vs MLServer (mlserver-pw") for label in goals)
    assert len([label for label in goals if "100-row vs MLServer" in label]) == 2
    assert "guarded single-row with feedback vs without (same Redis)" in goals


def test_service_stays_within_its_memory_budget(report: str) -> None:
    ratios = {row[0]: row[1] for row in table_rows(report, "Ratios")}
    assert set(ratios) >= {"1", "1000"}, ratios  # the ratios are computed and reported
    memory = {row[0]: row[3] for row in table_rows(report, "Start-up and memory")}
    assert set(memory) == TARGETS
    service_rss = [float(value) for value in memory["service-granian"].split(",")]
    assert service_rss
    assert max(service_rss) <= MAX_SERVICE_RSS_MB, memory
    assert re.search(
        r"^\| RSS per worker with its child processes, service-granian \| <= 150 MB \| \d+ MB "
        r"\| met \|$",
        report,
        re.MULTILINE,
    )
