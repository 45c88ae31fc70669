"""docs/deployment.md's commands for outside tools, run as written: the signing key pair
(openssl) and the Prometheus checks (promtool on the shipped configuration, rules and rule
tests)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.doc_examples import examples_for
from tests.integration.doc_shell import run_blocks

pytestmark = [pytest.mark.integration]


def test_signing_key_pair_as_documented(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    result = run_blocks(examples_for(request.node.nodeid), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    private = (tmp_path / "private.pem").read_text(encoding="ascii")
    assert private.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, what make sign reads
    derived = subprocess.run(
        ["openssl", "pkey", "-in", "private.pem", "-pubout"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert derived.stdout == (tmp_path / "public.pem").read_text(encoding="ascii")
    curve = subprocess.run(
        ["openssl", "pkey", "-in", "public.pem", "-pubin", "-noout", "-text"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "prime256v1" in curve.stdout


def test_promtool_checks_as_documented(request: pytest.FixtureRequest) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: make system-deps installs prometheus")
    result = run_blocks(examples_for(request.node.nodeid), cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    rule_files = sorted((REPO_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    assert rule_files
    assert all(f"{path.name}" in result.stdout + result.stderr for path in rule_files)
