"""Stages run as `python -m stages.<name>`: bad params or inputs fail fast and write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stages.lib.artifacts import read_json, write_json
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"stages.{module}", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("params_text", "expected"),
    [
        ("data:\n  test_size: 1.5\n", "data.test_size: Expected `float` < 1.0, got 1.5"),
        (
            "train:\n  selection:\n    candidates: [mlp, xgboost]\n",
            "train.selection.candidates.1: Invalid enum value 'xgboost'",
        ),
        ("train:\n  model: mlp\n", "train.model: unknown key"),
        ("data:\n  tset_size: 0.2\n", "data.tset_size: unknown key"),
        ("seed: [1\n", "not valid YAML"),
    ],
)
def test_bad_params_fail_on_one_line_before_any_output(
    tmp_path: Path, params_text: str, expected: str
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(params_text, encoding="utf-8")
    out_dir = tmp_path / "prepared"
    result = _run("data_prep", "--params", str(params), "--out-dir", str(out_dir), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert lines[0].startswith("data-prep: invalid params: ")
    assert not out_dir.exists()


def test_data_prep_select_then_train_write_complete_outputs(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "train:\n  selection:\n    candidates: [logistic_regression]\n", encoding="utf-8"
    )
    prepared, models = tmp_path / "prepared", tmp_path / "models"
    selection = tmp_path / "model_selection.json"
    first = _run("data_prep", "--params", str(params), "--out-dir", str(prepared), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in prepared.iterdir()) == [
        "reference_stats.json",
        "test.npz",
        "train.npz",
    ]
    chosen = _run(
        "select",
        "--params",
        str(params),
        "--data-dir",
        str(prepared),
        "--report",
        str(selection),
        cwd=tmp_path,
    )
    assert chosen.returncode == 0, chosen.stderr
    report = read_json(selection)
    assert report["winner"] == "logistic_regression"
    assert list(report["candidates"]) == ["logistic_regression"]
    # A pixel-wise linear model misses the shift gates on validation, so none is eligible.
    assert not report["candidates"]["logistic_regression"]["eligible"]
    assert "no candidate is eligible; logistic_regression has the highest" in chosen.stdout
    second = _run(
        "train",
        "--params",
        str(params),
        "--data-dir",
        str(prepared),
        "--selection",
        str(selection),
        "--out-dir",
        str(models),
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr
    assert "train: logistic_regression fitted on " in second.stdout
    assert "argmax mismatches = 0" in second.stdout
    assert sorted(p.name for p in models.iterdir()) == ["model.joblib", "model.json", "model.onnx"]
    assert read_json(models / "model.json")["model_type"] == "logistic_regression"


def test_train_refuses_a_selection_without_a_valid_winner(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("", encoding="utf-8")
    selection = tmp_path / "model_selection.json"
    write_json(selection, {"winner": "xgboost"})
    result = _run(
        "train",
        "--params",
        str(params),
        "--data-dir",
        str(REPO_ROOT / "data" / "prepared"),
        "--selection",
        str(selection),
        "--out-dir",
        str(tmp_path / "models"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "model_selection.json: no valid 'winner' (got 'xgboost')" in result.stderr
    assert not (tmp_path / "models").exists()


def test_missing_input_is_named(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("", encoding="utf-8")
    selection = tmp_path / "model_selection.json"
    write_json(selection, {"winner": "logistic_regression"})
    result = _run(
        "train",
        "--params",
        str(params),
        "--data-dir",
        str(tmp_path / "nowhere"),
        "--selection",
        str(selection),
        "--out-dir",
        str(tmp_path / "models"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "nowhere/train.npz: required input is missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_invalid_csv_source_names_the_failed_check(tmp_path: Path) -> None:
    (tmp_path / "mine.csv").write_text(
        ",".join(f"p{i}" for i in range(64)) + ",label\n" + "17," * 64 + "3\n", encoding="utf-8"
    )
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  source: mine.csv\n", encoding="utf-8")
    result = _run(
        "data_prep", "--params", str(params), "--out-dir", str(tmp_path / "out"), cwd=tmp_path
    )
    assert result.returncode == 1
    assert "data validation failed [pixel_range]: row 0 pixel 0 = 17.0 is outside 0..16" in (
        result.stderr
    )
    assert not (tmp_path / "out").exists()


def test_quality_gate_failure_is_explained(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "evaluate:\n  gates:\n    clean_accuracy:\n      threshold: 1.0\n"
        "      rationale: Every clean digit must be read correctly.\n",
        encoding="utf-8",
    )
    result = _run(
        "evaluate",
        "--params",
        str(params),
        "--data-dir",
        str(REPO_ROOT / "data" / "prepared"),
        "--model-dir",
        str(REPO_ROOT / "models"),
        "--metrics",
        str(tmp_path / "metrics.json"),
        "--confusion",
        str(tmp_path / "confusion.json"),
        "--per-class-table",
        str(tmp_path / "per_class.md"),
        "--importance",
        str(tmp_path / "importance.json"),
        "--calibration",
        str(tmp_path / "calibration.json"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    accuracy = read_json(REPO_ROOT / "reports" / "metrics.json")["accuracy"]
    assert result.stderr.strip() == (
        "evaluate: error: gate evaluate.gates.clean_accuracy failed: accuracy on the clean "
        f"test split = {accuracy:.4f}, needs >= 1.0 (Every clean digit must be read correctly.)"
    )
    # The metrics are written before the gate stops the stage, with the failed verdict.
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["passed"] is False
    assert metrics["gates"]["clean_accuracy"]["passed"] is False
    assert metrics["gates"]["clean_accuracy"]["rationale"] == (
        "Every clean digit must be read correctly."
    )
