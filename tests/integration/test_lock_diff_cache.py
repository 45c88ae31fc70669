"""python -m tools.lock_diff reads the old version of a DVC-cached output (not in git) from the
real DVC cache that `dvc add` fills, and says so when the cache does not have it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import VENV_BIN
from tests.integration.dvc_repo import run
from tests.lock_project import Project, npz

pytestmark = pytest.mark.integration


def test_old_version_comes_from_the_dvc_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    project = Project(tmp_path / "repo")
    run(str(VENV_BIN / "dvc"), "init", "--quiet", cwd=project.root)
    X = np.linspace(0.0, 1.0, 12, dtype=np.float64).reshape(3, 4)
    project.write("data/train.npz", npz(X=X))
    # `dvc add` stores the file in the cache and git-ignores it; the stage in dvc.lock owns it.
    run(str(VENV_BIN / "dvc"), "add", "--quiet", "data/train.npz", cwd=project.root)
    (project.root / "data/train.npz.dvc").unlink()
    project.lock({"prep": ["data/train.npz"]})
    project.commit()
    assert "data/train.npz" not in project.git("ls-files").splitlines()  # only in the cache

    X2 = X.copy()
    X2[1, 2] = 0.75
    (project.root / "data/train.npz").unlink()  # never write through a cache link
    project.write("data/train.npz", npz(X=X2))
    project.lock({"prep": ["data/train.npz"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "array 'X': 1 of 12 differ, 1 beyond noise; max abs diff 0.205 at [1, 2]" in out

    shutil.rmtree(project.root / ".dvc" / "cache")
    code, out = project.diff(capsys)
    assert code == 1
    assert "old version not available (not in git at HEAD, not in the DVC cache)" in out
