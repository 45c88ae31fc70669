"""python -m tools.lock_diff against small git repositories made here (real git, no pipeline):
what CI prints when `dvc repro` changed a committed dvc.lock -- the report, its exit status,
its usage errors and the step summary (each file format: test_lock_diff_formats.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.lock_project import METRICS, Project, committed_metrics
from tools import lock_diff

pytestmark = pytest.mark.unit


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return Project(tmp_path / "repo")


def test_nothing_changed_exits_0(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    committed_metrics(project)
    code, out = project.diff(capsys, "reports/")
    assert code == 0
    assert "nothing differs" in out


def test_an_output_missing_at_head_is_a_new_output(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    committed_metrics(project)
    project.write_json("reports/ood.json", {"threshold": 0.5})
    project.lock({"evaluate": ["reports/metrics.json"], "ood": ["reports/ood.json"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "stage ood: added" in out
    assert "out reports/ood.json: added, md5 " in out
    assert "verdict: new output (not at HEAD)" in out
    assert "stage evaluate" not in out  # unchanged


def test_changed_files_outside_the_lock_are_listed_for_the_given_paths(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    committed_metrics(project)
    project.write_json("reports/extra.json", {"n": 1})
    project.commit()
    project.write_json("reports/extra.json", {"n": 2})
    project.write("reports/new.md", "new\n")
    code, out = project.diff(capsys)
    assert code == 0, out  # without paths only the lock and its outs count
    code, out = project.diff(capsys, "reports/")
    assert code == 1
    assert "other changed files\n  reports/extra.json\n    verdict: substantive change" in out
    assert "  reports/new.md\n    verdict: new output (not at HEAD)" in out


def test_the_markdown_report_goes_to_the_step_summary(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    committed_metrics(project)
    project.write_json("reports/metrics.json", {**METRICS, "accuracy": 0.5})
    project.lock({"evaluate": ["reports/metrics.json"]})
    summary = project.root.parent / "summary.md"
    summary.write_text("## earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _ = project.diff(capsys)
    assert code == 1
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## earlier step\n## `dvc.lock` and its outputs: `HEAD`")
    assert "### Stage `evaluate` (changed)" in text
    assert (
        "  - **verdict:** `substantive change: 1 number(s) beyond noise in numbers,"
        " largest rel diff 0.49 at $.accuracy (0.9811111111111112 -> 0.5)`"
    ) in text


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no-git", "rev-parse --show-toplevel"),
        ("no-lock", "does not exist"),
        ("bad-lock", "is not a dvc.lock file"),
        ("bad-rev", "'v9' is not a commit"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    if setup != "no-git":
        project = Project(root)
        committed_metrics(project)
    if setup == "no-git":
        (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n", encoding="utf-8")
    if setup == "no-lock":
        (root / "dvc.lock").unlink()
    if setup == "bad-lock":
        (root / "dvc.lock").write_text("- a list\n", encoding="utf-8")
    rev = ["--rev", "v9"] if setup == "bad-rev" else []
    code = lock_diff.main(["--lock", str(root / "dvc.lock"), *rev])
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_exit_status(project: Project) -> None:
    committed_metrics(project)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    command = [sys.executable, "-m", "tools.lock_diff", "reports/"]
    same = subprocess.run(command, cwd=project.root, env=env, capture_output=True, text=True)
    assert same.returncode == 0, same.stderr
    project.write_json("reports/metrics.json", {**METRICS, "accuracy": 0.5})
    project.lock({"evaluate": ["reports/metrics.json"]})
    differs = subprocess.run(command, cwd=project.root, env=env, capture_output=True, text=True)
    assert differs.returncode == 1, differs.stderr
    assert "1 stage(s) differ in dvc.lock; files: 1 substantive change" in differs.stdout
    usage = subprocess.run(
        [*command, "--rtol", "nan"], cwd=project.root, env=env, text=True, capture_output=True
    )
    assert usage.returncode == 2
    assert "--rtol: must be a finite number >= 0" in usage.stderr


def test_changed_params_and_deps_are_listed_per_stage(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    train = {"mlp": {"alpha": 1.0e-4, "hidden_layer_sizes": [128]}, "C": 1.0}
    project.write_json("reports/metrics.json", METRICS)
    project.lock({"evaluate": ["reports/metrics.json"]}, {"seed": 42, "train": train})
    project.commit()
    project.write("make.py", "print('stages, changed')\n")
    changed = {"mlp": {"alpha": 1.1e-4, "hidden_layer_sizes": [128, 64]}, "C": 1.0}
    project.lock({"evaluate": ["reports/metrics.json"]}, {"seed": 42, "train": changed})
    code, out = project.diff(capsys)
    assert code == 1
    assert "param params.yaml:train.mlp.alpha: 0.0001 -> 0.00011" in out
    assert "param params.yaml:train.mlp.hidden_layer_sizes[1]: added 64" in out
    assert "seed" not in out
    assert "dep make.py: md5 " in out
    assert "out reports/metrics.json" not in out  # its md5 did not change
    assert "1 stage(s) differ in dvc.lock; no output differs" in out
