"""tools.cited_tests: the risk register's tests must have run and passed in the suite."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tools import junit_merge
from tools.cited_tests import citations, main, outcomes, problems

pytestmark = pytest.mark.unit
REGISTER_TEXT = (REPO_ROOT / "docs" / "risk_register.md").read_text(encoding="utf-8")


def full_run() -> list[tuple[str, str, str]]:
    """Test cases as if every cited test ran and passed (a parametrised one twice)."""
    cited, _ = citations(REGISTER_TEXT)
    cases = []
    for citation in cited:
        name = citation.test or "test_something"
        cases += [(citation.module, f"{name}[a]", "passed"), (citation.module, name, "passed")]
    return cases


def test_every_risk_cites_at_least_one_test() -> None:
    cited, uncited = citations(REGISTER_TEXT)
    assert uncited == []
    assert {citation.risk for citation in cited} >= {"R04", "R17", "R22"}
    assert all(citation.path.startswith("tests/") for citation in cited)


def test_a_complete_passing_run_backs_the_register() -> None:
    assert problems(REGISTER_TEXT, full_run()) == []


@pytest.mark.parametrize("outcome", ["skipped", "failed", None])
def test_a_cited_test_that_was_skipped_failed_or_deselected_is_reported(
    outcome: str | None,
) -> None:
    name = "test_container_job_scans_the_built_image_with_trivy"
    cases = [case for case in full_run() if not case[1].startswith(name)]
    if outcome is not None:
        cases.append(("tests.unit.test_ci_workflow", name, outcome))
    found = problems(REGISTER_TEXT, cases)
    assert len(found) == 1, found
    assert found[0].startswith(f"R04: tests/unit/test_ci_workflow.py::{name} did not ")
    assert (outcome or "missing or deselected") in found[0]


def test_a_cited_file_with_no_test_run_is_reported() -> None:
    cases = [case for case in full_run() if case[0] != "tests.unit.test_supply_chain"]
    assert problems(REGISTER_TEXT, cases) == [
        "R04: tests/unit/test_supply_chain.py did not run (missing or deselected)"
    ]


def test_a_row_verified_only_by_a_document_is_reported() -> None:
    row = next(line for line in REGISTER_TEXT.splitlines() if line.startswith("| R17 |"))
    cells = row.rstrip().rstrip("|").rsplit("|", 1)[0]
    weakened = REGISTER_TEXT.replace(row, f"{cells}| `docs/model_card.md` |")
    found = problems(weakened, full_run())
    assert found == ["R17: 'verified by' names no test under tests/"]


def test_a_real_partial_junit_report_misses_what_did_not_run(tmp_path: Path) -> None:
    """pytest's own JUnit names, from a run of one cited file only."""
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "tests/unit/test_ci_workflow.py",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    cases = outcomes(report)
    assert ("tests.unit.test_ci_workflow", "test_zizmor_audit_finds_nothing", "passed") in cases
    found = problems(REGISTER_TEXT, cases)
    assert not [p for p in found if "test_ci_workflow.py" in p]
    assert any(p.startswith("R04: tests/unit/test_supply_chain.py did not run") for p in found)
    assert main([str(report), "--register", str(REPO_ROOT / "docs" / "risk_register.md")]) == 1


def test_make_test_checks_the_merged_report_of_every_tier() -> None:
    """`make test` runs each tier's pytest with its own JUnit report, merges exactly those
    reports and checks the citations against the merged one."""
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", "test", f"PYTHON={sys.executable}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    commands = [shlex.split(line) for line in dry_run.stdout.replace("\\\n", " ").splitlines()]
    first = next(i for i, c in enumerate(commands) if c[:1] == ["pytest"])
    assert commands[first - 1] == ["rm", "-rf", "build/junit"]  # no stale report passes
    runs = [c for c in commands if c[:1] == ["pytest"]]
    reports = [arg.removeprefix("--junitxml=") for run in runs for arg in run if "junitxml" in arg]
    assert len(reports) == len(runs) == len(set(reports))
    folders = [arg for run in runs for arg in run if arg.startswith("tests")]
    assert sorted(set(folders)) == ["tests/integration", "tests/model", "tests/unit"]
    selections = [run[run.index("-m") + 1] for run in runs if "-m" in run]
    assert sorted(selections) == ["not serial", "serial"]  # each integration test runs once
    assert all(run.count("tests/integration") == 1 for run in runs if "-m" in run)
    assert not any(arg in run for run in runs for arg in ("-k", "--deselect", "-x"))
    last_run = commands.index(runs[-1])
    merge, check = commands[last_run + 1], commands[last_run + 2]
    assert merge == [
        "python",
        "-m",
        "tools.junit_merge",
        "--out",
        "build/test-report.xml",
        *reports,
    ]
    assert check == ["python", "-m", "tools.cited_tests", "build/test-report.xml"]


def test_merged_reports_hold_every_run_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    """Two real pytest runs (one of them failing) merged: both runs' outcomes are there."""
    reports = []
    for name, body in (("one", "assert True"), ("two", "assert False")):
        (tmp_path / f"test_{name}.py").write_text(f"def test_{name}():\n    {body}\n")
        report = tmp_path / f"{name}.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
                f"--junitxml={report}",
                f"test_{name}.py",
            ],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            check=False,
        )
        reports.append(report)
    merged = tmp_path / "build" / "merged.xml"
    assert junit_merge.main(["--out", str(merged), *map(str, reports)]) == 0
    assert outcomes(merged) == [
        ("test_one", "test_one", "passed"),
        ("test_two", "test_two", "failed"),
    ]
    missing = tmp_path / "not-run.xml"
    assert junit_merge.main(["--out", str(merged), str(reports[0]), str(missing)]) == 2
    assert len(outcomes(merged)) == 2  # the earlier merged report is left as it was
