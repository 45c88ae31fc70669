"""The reviewer's workflow in a temporary clone: diff metrics, params and plots across commits,
and run an experiment — all with real `dvc` and `git` commands and no DVC remote."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, VENV_BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The L2 strength of the MLP candidate: it changes the selected, served model.
CHANGED_KEY = "train.mlp.alpha"


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("PYTHONPATH", None)
    return env


def _run(*args: str, cwd: Path, timeout: int = 600) -> str:
    result = subprocess.run(
        list(args),
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _set_param(params_file: Path, old: str, new: str) -> None:
    text = params_file.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found exactly once in params.yaml"
    params_file.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(scope="module")
def reviewed_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone with two commits: the base pipeline run, and a changed regularisation strength."""
    clone = tmp_path_factory.mktemp("review") / "repo"
    _run("git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(clone), cwd=REPO_ROOT)
    _run("git", "config", "user.email", "reviewer@example.invalid", cwd=clone)
    _run("git", "config", "user.name", "Reviewer", cwd=clone)
    _run("dvc", "repro", cwd=clone)
    _set_param(clone / "params.yaml", "    alpha: 1.0e-4\n", "    alpha: 2.0e-4\n")
    _run("dvc", "repro", cwd=clone)
    _run("git", "add", "-A", cwd=clone)
    _run("git", "commit", "--quiet", "-m", "Stronger regularisation", cwd=clone)
    return clone


def test_params_diff_shows_the_change(reviewed_clone: Path) -> None:
    diff = json.loads(_run("dvc", "params", "diff", "HEAD~1", "--json", cwd=reviewed_clone))
    change = diff["params.yaml"][CHANGED_KEY]
    assert (change["old"], change["new"]) == (1e-4, 2e-4)
    assert change["diff"] == pytest.approx(1e-4)
    markdown = _run("dvc", "params", "diff", "HEAD~1", "--md", cwd=reviewed_clone)
    assert CHANGED_KEY in markdown


def test_metrics_diff_shows_the_effect(reviewed_clone: Path) -> None:
    diff = json.loads(_run("dvc", "metrics", "diff", "HEAD~1", "--json", cwd=reviewed_clone))
    log_loss = diff["reports/metrics.json"]["log_loss"]
    assert log_loss["old"] != log_loss["new"]
    assert log_loss["diff"] == pytest.approx(log_loss["new"] - log_loss["old"])
    markdown = _run("dvc", "metrics", "diff", "HEAD~1", "--md", cwd=reviewed_clone)
    assert "reports/metrics.json" in markdown
    assert "log_loss" in markdown


def test_plots_diff_renders_html(reviewed_clone: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    _run("dvc", "plots", "diff", "HEAD~1", "-o", str(out), cwd=reviewed_clone)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Confusion matrix" in html
    assert "HEAD~1" in html
    assert "workspace" in html


def test_experiment_run_is_listed(reviewed_clone: Path) -> None:
    _run("dvc", "exp", "run", "-S", "evaluate.calibration_bins=15", cwd=reviewed_clone)
    table = json.loads(_run("dvc", "exp", "show", "--json", cwd=reviewed_clone))
    experiments = {
        rev["name"]: rev["data"]["params"]["params.yaml"]["data"]["evaluate"]
        for row in table
        for exp in row.get("experiments") or []
        for rev in exp["revs"]
    }
    assert len(experiments) == 1, table
    (evaluate_params,) = experiments.values()
    assert evaluate_params["calibration_bins"] == 15
    metrics = _run("dvc", "exp", "show", "--md", cwd=reviewed_clone)
    assert next(iter(experiments)) in metrics
