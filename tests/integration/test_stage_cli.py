"""Stages run as `python -m stages.<name>`: bad params or inputs fail fast and write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
        ("train:\n  model: xgboost\n", "train.model: Invalid enum value 'xgboost'"),
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


def test_data_prep_then_train_write_complete_outputs(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  model: logistic_regression\n", encoding="utf-8")
    prepared, models = tmp_path / "prepared", tmp_path / "models"
    first = _run("data_prep", "--params", str(params), "--out-dir", str(prepared), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in prepared.iterdir()) == [
        "reference_stats.json",
        "test.npz",
        "train.npz",
    ]
    second = _run(
        "train",
        "--params",
        str(params),
        "--data-dir",
        str(prepared),
        "--out-dir",
        str(models),
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr
    assert "argmax mismatches = 0" in second.stdout
    assert sorted(p.name for p in models.iterdir()) == ["model.joblib", "model.json", "model.onnx"]


def test_missing_input_is_named(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("", encoding="utf-8")
    result = _run(
        "train",
        "--params",
        str(params),
        "--data-dir",
        str(tmp_path / "nowhere"),
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
    params.write_text("evaluate:\n  min_accuracy: 1.0\n", encoding="utf-8")
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
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "quality gate failed: test accuracy 0.9" in result.stderr
    assert "is below evaluate.min_accuracy = 1.0" in result.stderr
