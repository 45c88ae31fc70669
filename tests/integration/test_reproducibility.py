"""A fresh clone + `dvc repro` reproduces dvc.lock, reports/ (figures included) and docs/ byte
for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, VENV_BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def _dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(VENV_BIN / "dvc"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of the committed HEAD with every stage rerun in it.

    Plain `dvc repro` would skip the stages whose git-tracked outputs (reports, docs) already
    match, so `--force` makes every stage recompute every output from scratch.
    """
    clone = tmp_path_factory.mktemp("clone") / "repo"
    _git("clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(clone), cwd=REPO_ROOT)
    result = _dvc("repro", "--force", cwd=clone)
    assert result.returncode == 0, f"dvc repro failed in a fresh clone:\n{result.stderr}"
    for stage in ("data-prep", "train", "evaluate", "robustness", "figures", "audit-docs"):
        assert f"Running stage '{stage}'" in result.stdout
    return clone


def test_repro_leaves_lock_and_reports_byte_identical(fresh_clone: Path) -> None:
    diff = subprocess.run(
        ["git", "diff", "--exit-code", "--stat", "--", "dvc.lock", "reports/", "docs/"],
        cwd=fresh_clone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert diff.returncode == 0, (
        "dvc repro on a fresh clone changed committed outputs; run `dvc repro` and commit "
        f"dvc.lock and reports/:\n{diff.stdout}"
    )
    assert _git("status", "--porcelain", cwd=fresh_clone) == "", "repro created untracked files"


def test_dvc_status_is_clean_after_repro(fresh_clone: Path) -> None:
    result = _dvc("status", cwd=fresh_clone)
    assert result.returncode == 0, result.stderr
    assert "Data and pipelines are up to date." in result.stdout


def test_noop_repro_runs_no_stage(fresh_clone: Path) -> None:
    result = _dvc("repro", cwd=fresh_clone)
    assert result.returncode == 0, result.stderr
    assert "Running stage" not in result.stdout
    assert "didn't change, skipping" in result.stdout


def test_figures_are_locked_and_redrawn_byte_for_byte(fresh_clone: Path) -> None:
    """Every SVG figure is an output `dvc.lock` pins, and the clone redrew the committed bytes."""
    lock = yaml.safe_load((fresh_clone / "dvc.lock").read_text(encoding="utf-8"))
    locked = {out["path"]: out["md5"] for out in lock["stages"]["figures"]["outs"]}
    drawn = sorted(
        p.relative_to(fresh_clone).as_posix() for p in fresh_clone.glob("reports/figures/*")
    )
    assert len(drawn) == 9  # 8 figures and their index
    assert sorted(locked) == drawn
    for path in drawn:
        data = (fresh_clone / path).read_bytes()
        assert hashlib.md5(data, usedforsecurity=False).hexdigest() == locked[path], path
        assert data == (REPO_ROOT / path).read_bytes(), path
