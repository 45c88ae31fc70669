"""docs/pipeline.md and docs/deployment.md's dvc commands, run as written in scratch clones of
this repository (real git, dvc and the pipeline's stages; the clone shares the checkout's venv
through a ``.venv`` symbolic link, as a reader's checkout has its own)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.doc_examples import examples_for
from tests.integration.doc_shell import run_blocks, shell_env
from tests.integration.dvc_repo import clone, seed_from_checkout

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def seeded_clone(tmp_path: Path) -> Path:
    repo = clone(tmp_path / "repo")
    seed_from_checkout(repo)
    (repo / ".venv").symlink_to(REPO_ROOT / ".venv")
    return repo


def test_invalid_params_are_refused_as_shown(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    (transcript,) = examples_for(request.node.nodeid)
    lines = transcript.text.splitlines()
    commands = [line.removeprefix("$ ") for line in lines if line.startswith("$ ")]
    expected = [line for line in lines if not line.startswith("$ ")]
    assert len(commands) == 1
    assert expected
    repo = clone(tmp_path / "repo")
    params = repo / "params.yaml"
    text = params.read_text(encoding="utf-8")
    assert "  test_size: 0.25\n" in text
    params.write_text(text.replace("  test_size: 0.25\n", "  test_size: 1.5\n"), encoding="utf-8")
    result = subprocess.run(
        ["bash", "-c", commands[0]],
        cwd=repo,
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert (result.stdout + result.stderr).splitlines() == expected
    written = [path.name for path in (repo / "data" / "prepared").iterdir()]
    assert written == [".gitignore"]  # nothing is written


def test_pipeline_by_hand_and_review_in_a_clone(
    request: pytest.FixtureRequest, seeded_clone: Path
) -> None:
    result = run_blocks(examples_for(request.node.nodeid), cwd=seeded_clone, timeout=780)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert "up to date" in result.stdout + result.stderr  # the seeded clone matches dvc.lock
    assert "accuracy" in out
    assert "gate" in out.lower()
    assert (seeded_clone / "dvc_plots" / "index.html").is_file()
    assert (seeded_clone / "review_plots" / "index.html").is_file()
    assert (seeded_clone / "review_figures").is_dir()
    # The experiment ran and is listed with the changed parameter.
    assert "evaluate.calibration_bins" in out
    assert "15" in out


def test_team_remote_is_configured_per_clone(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = clone(tmp_path / "repo")
    result = run_blocks(examples_for(request.node.nodeid), cwd=repo)
    assert result.returncode == 0, result.stderr
    local = (repo / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert "url = /mnt/shared/digits-dvc-remote" in local
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""  # nothing to commit: URLs stay out of git
