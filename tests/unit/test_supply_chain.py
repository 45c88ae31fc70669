"""Supply chain: hash-pinned locks without index URLs, a CycloneDX SBOM, bandit-clean code."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, VENV_BIN

pytestmark = pytest.mark.unit

LOCKS = [REPO_ROOT / "requirements" / "dev.lock", REPO_ROOT / "requirements" / "serving.lock"]
# MLServer's own lock (the `make bench` anchor, .venv-mlserver) is held to the same rules.
HASHED_LOCKS = [*LOCKS, REPO_ROOT / "requirements" / "mlserver.lock"]
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")
FORBIDDEN_IN_SERVING = {
    "scikit-learn",
    "dvc",
    "joblib",
    "adversarial-robustness-toolbox",
    "torch",
    "matplotlib",
}


def _entries(lock: Path) -> list[tuple[str, str, str]]:
    """(name, version, whole requirement text) for every requirement in a lock file."""
    text = lock.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    entries = []
    for block in blocks:
        match = REQUIREMENT.match(block)
        if match:
            entries.append((match.group(1).lower(), match.group(2), block))
    return entries


@pytest.mark.parametrize("lock", HASHED_LOCKS, ids=lambda p: p.name)
def test_every_requirement_is_pinned_with_hashes(lock: Path) -> None:
    entries = _entries(lock)
    assert len(entries) > 20
    unhashed = [name for name, _, block in entries if "--hash=sha256:" not in block]
    assert unhashed == []
    lines = [ln for ln in lock.read_text(encoding="utf-8").splitlines() if ln.strip()]
    loose = [ln for ln in lines if not ln.startswith((" ", "#")) and "==" not in ln]
    assert loose == []


@pytest.mark.parametrize("lock", HASHED_LOCKS, ids=lambda p: p.name)
def test_locks_name_no_index_or_host(lock: Path) -> None:
    text = lock.read_text(encoding="utf-8")
    for marker in ("--index-url", "--extra-index-url", "--find-links", "--trusted-host", "://"):
        assert marker not in text


def test_serving_lock_is_a_consistent_subset_without_the_training_stack() -> None:
    dev = {(name, version) for name, version, _ in _entries(LOCKS[0])}
    serving = {(name, version) for name, version, _ in _entries(LOCKS[1])}
    assert serving <= dev
    names = {name for name, _ in serving}
    assert names & FORBIDDEN_IN_SERVING == set()
    assert {"litestar", "msgspec", "onnxruntime", "numpy", "prometheus-client"} <= names


def test_cyclonedx_sbom_lists_every_locked_package(tmp_path: Path) -> None:
    out = tmp_path / "serving.cdx.json"
    result = subprocess.run(
        [
            str(VENV_BIN / "cyclonedx-py"),
            "requirements",
            "--pyproject",
            str(REPO_ROOT / "pyproject.toml"),
            "--output-reproducible",
            "--of",
            "JSON",
            "-o",
            str(out),
            str(LOCKS[1]),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    bom = json.loads(out.read_text(encoding="utf-8"))
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == "digits-mlops"
    components = {(c["name"].lower(), c["version"]) for c in bom["components"]}
    assert components == {(name, version) for name, version, _ in _entries(LOCKS[1])}
    assert all(c["purl"].startswith("pkg:pypi/") for c in bom["components"])


def test_bandit_finds_nothing_in_stages_and_serving() -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "bandit"),
            "-c",
            str(REPO_ROOT / "pyproject.toml"),
            "-r",
            str(REPO_ROOT / "stages"),
            str(REPO_ROOT / "serving"),
            "-q",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["results"] == [], [
        (r["filename"], r["line_number"], r["test_id"]) for r in report["results"]
    ]
    assert result.returncode == 0
