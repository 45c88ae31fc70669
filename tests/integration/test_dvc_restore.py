"""Restoring on a new machine from the DVC remote (docs/operations.md), with real git, dvc,
make and the service: the documented block in a fresh clone, and what a clone sees when the
committed dvc.lock names artifacts that were never pushed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.doc_examples import examples_for
from tests.integration.conftest import RunningServer, http_get
from tests.integration.dvc_repo import cached_outs, clone, md5, run, seed_from_checkout, tool_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
BLOCK = (
    "tests/integration/test_dvc_restore.py::"
    "test_a_new_machine_restores_and_serves_the_pinned_version"
)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The machine that trained: a clone with every artifact, as the git remote of the rest."""
    repo = clone(tmp_path_factory.mktemp("origin") / "repo")
    seed_from_checkout(repo)
    return repo


def new_machine(origin: Path, remote: Path, where: Path) -> Path:
    """A fresh clone of ``origin`` whose default DVC remote is ``remote`` (step 1)."""
    repo = clone(where, source=origin)
    run("dvc", "remote", "add", "--local", "--default", "restore", str(remote), cwd=repo)
    return repo


def run_block(repo: Path, text: str) -> subprocess.CompletedProcess[str]:
    """The documented block, as written; ``STAMP=`` because the clone uses the project's
    venv (already set up) instead of `make venv`'s own."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text],
        cwd=repo,
        env={**tool_env(), "MAKEFLAGS": "STAMP="},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_new_machine_restores_and_serves_the_pinned_version(
    origin: Path, tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    remote = tmp_path / "remote"
    run("dvc", "remote", "add", "--local", "pushed", str(remote), cwd=origin)
    run("dvc", "push", "--remote", "pushed", cwd=origin)  # make push, to this remote
    repo = new_machine(origin, remote, tmp_path / "new")
    outs = cached_outs(repo)
    assert not any((repo / path).exists() for path in outs)

    (block,) = examples_for(BLOCK)
    restored = run_block(repo, block.text)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "Running stage" not in restored.stdout + restored.stderr  # nothing retrained
    assert restored.stdout.rstrip().endswith("Data and pipelines are up to date.")
    for path, digest in outs.items():
        assert md5(repo / path) == digest, path

    server = serve({"DIGITS_LOCK_FILE": str(repo / "dvc.lock")}, workers=1, cwd=repo)
    status, body = http_get(f"{server.base_url}/ready")
    assert status == 200
    assert json.loads(body)["model_version"] == outs["models/model.onnx"][:12]


def test_a_lock_committed_without_make_push_names_what_the_remote_lacks(
    origin: Path, tmp_path: Path
) -> None:
    """The remote has every artifact but the models: what a clone of a commit sees when its
    dvc.lock came from a retrain whose `make push` never ran."""
    remote = tmp_path / "remote"
    run("dvc", "remote", "add", "--local", "partial", str(remote), cwd=origin)
    models = [path for path in cached_outs(origin) if path.startswith("models/")]
    assert "models/model.onnx" in models
    others = [path for path in cached_outs(origin) if path not in models]
    run("dvc", "push", "--remote", "partial", *others, cwd=origin)
    repo = new_machine(origin, remote, tmp_path / "new")

    (block,) = examples_for(BLOCK)  # the same procedure, on this remote
    failed = run_block(repo, block.text)
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Missing cache files" in said
    assert "failed to pull data from the cloud" in said
    assert "models/model.onnx" in said
    assert not (repo / "models" / "model.onnx").exists()  # nothing to serve
    for path in others:
        assert (repo / path).is_file(), path  # the rest arrived: only the models are missing
