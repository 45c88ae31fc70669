"""Rollback by image digest from the GTO stage (docs/operations.md), with real git, gto,
make and kubectl in a temporary repository holding the project's Makefile and manifests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.doc_examples import examples_for
from tests.integration.dvc_repo import run, tool_env
from tests.unit.test_deploy_k8s import validate
from tests.unit.test_deploy_k8s_secrets import copy_of_k8s, render

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
NAME = "europe-west1-docker.pkg.dev/acme/digits/digits-api"
FIRST, SECOND = f"{NAME}@sha256:{'1a' * 32}", f"{NAME}@sha256:{'2b' * 32}"


def env() -> dict[str, str]:
    """The tools' environment; ``STAMP=`` because this repository uses the project's venv
    (no `.venv` of its own for `make promote` to install first)."""
    return {**tool_env(), "PYTHONPATH": str(REPO_ROOT), "MAKEFLAGS": "STAMP="}


def sh(script: str, repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=repo,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(script: str, repo: Path) -> str:
    result = sh(script, repo)
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with the Makefile and manifests, versions v1.0.0 and v1.1.0."""
    root = tmp_path / "repo"
    k8s = copy_of_k8s(root)
    (k8s / "secrets" / "api-keys.jsonl").write_text("", encoding="utf-8")
    (k8s / "secrets" / "redis-password").write_text("ab" * 16, encoding="utf-8")
    shutil.copytree(REPO_ROOT / "deploy" / "cloudrun", root / "deploy" / "cloudrun")
    shutil.copy(REPO_ROOT / "Makefile", root / "Makefile")
    for args in (
        ["init", "--quiet", "--initial-branch=main"],
        ["config", "user.email", "test@example.invalid"],
        ["config", "user.name", "Test"],
        ["add", "."],
        ["commit", "--quiet", "-m", "v1"],
    ):
        run("git", *args, cwd=root)
    ok("gto register digits-classifier --version v1.0.0", root)
    (root / "model.txt").write_text("retrained\n", encoding="utf-8")
    run("git", "add", "model.txt", cwd=root)
    run("git", "commit", "--quiet", "-m", "v2", cwd=root)
    ok("gto register digits-classifier --version v1.1.0", root)
    return root


def deploy_image(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sh(" ".join(["python -m tools.deploy_image", *args]), repo)


def prod_tags(repo: Path) -> list[str]:
    return run("git", "tag", "--list", "digits-classifier#prod#*", cwd=repo).split()


def test_the_documented_rollback_deploys_the_previous_digest(
    repo: Path, request: pytest.FixtureRequest
) -> None:
    (block,) = examples_for(request.node.nodeid)
    ok(f"make promote VERSION=v1.0.0 STAGE=prod IMAGE_DIGEST={FIRST}", repo)
    ok(f"make promote VERSION=v1.1.0 STAGE=prod IMAGE_DIGEST={SECOND}", repo)
    assert deploy_image(repo, "current digits-classifier prod").stdout == f"v1.1.0 {SECOND}\n"
    ok(f"python -m tools.deploy_image set {SECOND}", repo)  # what runs now

    out = ok(block.text, repo)
    assert f"image: {FIRST}" in out  # the block's own check of the rendered manifests
    assert deploy_image(repo, "current digits-classifier prod").stdout == f"v1.0.0 {FIRST}\n"
    assert len(prod_tags(repo)) == 3  # the rollback is a third assignment, in the history
    assert ok("gto show digits-classifier#prod --version", repo).strip() == "v1.0.0"

    rendered = render(repo / "deploy" / "k8s")
    assert rendered.returncode == 0, rendered.stderr
    images = set()
    for doc in (doc for doc in yaml.safe_load_all(rendered.stdout) if doc):
        validate(doc)
        if doc["kind"] == "StatefulSet":
            images |= {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]}
    assert images == {FIRST, "redis:7.2-alpine"}
    cloud_run = yaml.safe_load((repo / "deploy/cloudrun/service.yaml").read_text("utf-8"))
    assert [c["image"] for c in cloud_run["spec"]["template"]["spec"]["containers"]] == [FIRST]
    kustomization = yaml.safe_load((repo / "deploy/k8s/kustomization.yaml").read_text("utf-8"))
    (entry,) = [e for e in kustomization["images"] if e["name"] == "digits-api"]
    assert entry == {"name": "digits-api", "newName": NAME, "digest": FIRST.split("@")[1]}


def test_a_tag_a_single_version_and_an_unrecorded_image_are_refused(repo: Path) -> None:
    promoted = sh(f"make promote VERSION=v1.0.0 STAGE=prod IMAGE_DIGEST={NAME}:v1.0.0", repo)
    assert promoted.returncode != 0
    assert f"not an image by digest (NAME@sha256:<64 hex digits>): '{NAME}:v1.0.0'" in (
        promoted.stderr
    )
    assert prod_tags(repo) == []  # refused before gto created a tag

    ok(f"make promote VERSION=v1.0.0 STAGE=prod IMAGE_DIGEST={FIRST}", repo)
    single = deploy_image(repo, "previous digits-classifier prod")
    assert (single.returncode, single.stderr) == (
        2,
        "deploy_image: prod has had only v1.0.0: nothing to roll back to\n",
    )

    ok("make promote VERSION=v1.1.0 STAGE=prod", repo)  # no IMAGE_DIGEST
    ok("make promote VERSION=v1.0.0 STAGE=prod FORCE=1", repo)
    unrecorded = deploy_image(repo, "previous digits-classifier prod")
    assert unrecorded.returncode == 2
    assert unrecorded.stderr.startswith(
        "deploy_image: digits-classifier#prod#2 (v1.1.0) records no image: promote it again"
    )
    before = {p: p.read_bytes() for p in (repo / "deploy").rglob("*.yaml")}
    assert deploy_image(repo, "set", f"{NAME}:latest").returncode == 2
    assert {p: p.read_bytes() for p in (repo / "deploy").rglob("*.yaml")} == before
