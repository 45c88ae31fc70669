"""tools.summary: the terminal-sized pipeline summary `make run` prints."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tools.summary import main

pytestmark = pytest.mark.unit
MAX_COLUMNS = 80


def summarise(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["--root", str(root)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def copy_reports(tmp_path: Path) -> Path:
    for name in ("dvc.lock", "reports/metrics.json", "reports/robustness.json", "reports/ood.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, tmp_path / name)
    return tmp_path


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


def test_summary_of_this_run_fits_a_terminal_and_quotes_the_reports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = summarise(REPO_ROOT, capsys)
    assert (status, err) == (0, "")
    assert max(len(line) for line in out.splitlines()) <= MAX_COLUMNS
    assert len(out.splitlines()) <= 24
    metrics = json.loads((REPO_ROOT / "reports/metrics.json").read_text(encoding="utf-8"))
    robustness = json.loads((REPO_ROOT / "reports/robustness.json").read_text(encoding="utf-8"))
    assert f"accuracy {metrics['accuracy']:.4f}" in out
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text(encoding="utf-8"))
    md5 = next(
        out_["md5"]
        for stage in lock["stages"].values()
        for out_ in stage.get("outs", [])
        if out_["path"] == "models/model.onnx"
    )
    assert f"model version {md5[:12]}" in out
    assert md5 in out
    gate_rows = [line for line in out.splitlines() if re.search(r" (pass|FAIL)\*?$", line)]
    ood = json.loads((REPO_ROOT / "reports/ood.json").read_text(encoding="utf-8"))
    assert len(gate_rows) == 1 + len(robustness["gates"]) + len(ood["gates"])
    marginal = [
        name
        for report in (metrics, robustness, ood)
        for name, gate in report["gates"].items()
        if gate["marginal"]
    ]
    # The run's marginal gates are marked in their row, with one line saying what the mark means.
    marked = [row.split()[0] for row in gate_rows if row.endswith("*")]
    assert marked == marginal
    assert ("* marginal: the 95 % interval straddles the threshold" in out) is bool(marginal)
    for row in gate_rows:
        assert row.removesuffix("*").endswith("pass")
    for path in ("reports/metrics.json", "reports/robustness.json", "docs/model_card.md"):
        assert path in out
    assert "dvc metrics show" in out


def gate(kind: str, threshold: float, value: float | None, passed: bool) -> dict[str, Any]:
    """A verdict as stages/lib/gates.py writes it."""
    return {
        "description": "what was measured",
        "kind": kind,
        "threshold": threshold,
        "value": value,
        "ci95": None if value is None else [value - 0.01, value + 0.01],
        "passed": passed,
        "marginal": False,
        "rationale": "why " * 40,
    }


def test_gate_verdicts_are_read_as_the_stages_write_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_reports(tmp_path)
    write_json(
        root / "reports/metrics.json",
        {"accuracy": 0.97, "gates": {"clean_accuracy": gate("min", 0.95, 0.97, True)}},
    )
    write_json(
        root / "reports/robustness.json",
        {
            "gates": {
                "noise": gate("min", 0.7, 0.61, False),
                "max_ece": gate("max", 0.05, 0.03, True),
                "adversarial": gate("min", 0.8, None, False),  # not measured
            }
        },
    )
    status, out, _ = summarise(root, capsys)
    assert status == 1
    assert re.search(r"^clean_accuracy +>= 0\.9500 +0\.9700  pass$", out, re.MULTILINE)
    assert re.search(r"^noise +>= 0\.7000 +0\.6100  FAIL$", out, re.MULTILINE)
    assert re.search(r"^max_ece +<= 0\.0500 +0\.0300  pass$", out, re.MULTILINE)
    assert re.search(r"^adversarial +>= 0\.8000 +-  FAIL$", out, re.MULTILINE)
    assert "FAILED: noise, adversarial" in out
    assert "why" not in out
    assert max(len(line) for line in out.splitlines()) <= MAX_COLUMNS


def test_long_gate_names_are_shortened_not_wrapped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_reports(tmp_path)
    name = "min_accuracy_under_a_very_long_and_descriptive_perturbation_name"
    write_json(root / "reports/robustness.json", {"gates": {name: gate("min", 0.5, 0.9, True)}})
    status, out, _ = summarise(root, capsys)
    assert status == 0
    assert max(len(line) for line in out.splitlines()) <= MAX_COLUMNS
    assert f"{name[:33]}~ " in out


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in gate("min", 1, 1, True).items() if k != key}


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"gates": {"g": without("passed")}}, "gate 'g' has no boolean 'passed'"),
        ({"gates": {"g": without("threshold")}}, "gate 'g' has no threshold"),
        ({"gates": {"g": without("value")}}, "gate 'g' has no value"),
        ({"gates": {"g": without("kind")}}, "gate 'g' has no kind"),
        ({"gates": {"g": {**gate("min", 1, 1, True), "kind": "at_least"}}}, "not min or max"),
        ({"gates": {"g": {**gate("min", 1, 1, True), "threshold": "x"}}}, "numbers"),
        ({"gates": [{"name": "g", **gate("min", 1, 1, True)}]}, "not an object keyed by"),
    ],
)
def test_a_malformed_gate_is_named_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: dict[str, Any], message: str
) -> None:
    root = copy_reports(tmp_path)
    write_json(root / "reports/robustness.json", broken)
    status, out, err = summarise(root, capsys)
    assert (status, out) == (2, "")
    assert "reports/robustness.json" in err
    assert message in err


def test_missing_reports_say_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = summarise(tmp_path, capsys)
    assert (status, out) == (2, "")
    assert "metrics.json is missing: run `make pipeline` first" in err


def test_make_run_prints_the_summary_not_the_wide_table() -> None:
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", "run", f"PYTHON={sys.executable}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    commands = dry_run.stdout.splitlines()
    assert "python -m tools.summary" in commands
    assert "dvc metrics show" not in commands
