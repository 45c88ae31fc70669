"""Issue 27 in the workflows: the pull-request job uploads a `dvc plots diff` report and the
figure pairs and links them from its summary after the metrics and params diff; the release
workflow attaches the audit pack (HTML + PDF) to the release from a job that alone may write."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def load(name: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return document


def one_line(step: dict[str, Any]) -> str:
    return " ".join(str(step.get("run", "")).replace("\\\n", " ").split())


def test_the_review_job_uploads_plots_and_links_them_beside_the_metrics_diff() -> None:
    steps = load("ci.yml")["jobs"]["review"]["steps"]
    runs = [one_line(step) for step in steps]
    metrics = next(i for i, run in enumerate(runs) if "dvc metrics diff" in run)
    plots = next(i for i, run in enumerate(runs) if "dvc plots diff" in run)
    assert '.venv/bin/dvc plots diff "origin/$BASE_REF" --out build/review/dvc-plots' in runs[plots]
    assert (
        '.venv/bin/python -m tools.figure_pairs --base "origin/$BASE_REF" '
        "--out build/review/figures > build/review/figures.md"
    ) in runs[plots]
    upload = next(
        i
        for i, s in enumerate(steps)
        if str(s.get("uses", "")).startswith("actions/upload-artifact@")
    )
    assert PINNED.match(steps[upload]["uses"])
    assert steps[upload]["with"]["path"] == "build/review/"
    assert steps[upload]["with"]["if-no-files-found"] == "error"
    link = next(i for i, run in enumerate(runs) if "ARTIFACT_URL" in run)
    artifact_url = f"${{{{ steps.{steps[upload]['id']}.outputs.artifact-url }}}}"
    assert steps[link]["env"]["ARTIFACT_URL"] == artifact_url
    assert '>> "$GITHUB_STEP_SUMMARY"' in runs[link]
    assert "[review-plots]($ARTIFACT_URL)" in runs[link]
    assert "cat build/review/figures.md" in runs[link]
    assert metrics < plots < upload < link


def test_the_release_attaches_the_audit_pack_from_its_own_writing_job() -> None:
    release = load("release.yml")
    assert release["permissions"] == {"contents": "read"}
    assert release["jobs"]["publish"]["permissions"]["contents"] == "read"
    job = release["jobs"]["audit-pack"]
    assert job["permissions"] == {"contents": "write"}
    steps = job["steps"]
    runs = [one_line(step) for step in steps]
    build = runs.index("make audit-pack")
    attach = next(i for i, run in enumerate(runs) if "gh release upload" in run)
    assert (
        'gh release upload "$RELEASE_TAG" build/audit/audit-pack.html '
        "build/audit/audit-pack.pdf --clobber"
    ) in runs[attach]
    assert 'gh release create "$RELEASE_TAG" --verify-tag' in runs[attach]
    assert " ".join(steps[attach]["env"]["GH_TOKEN"].split()) == "${{ github.token }}"
    assert build < attach
    checkout = steps[0]
    assert checkout["with"]["persist-credentials"] is False
    assert all(PINNED.match(s["uses"]) for s in steps if "uses" in s)
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\naudit-pack: ", 1)[1].split("\n\n", 1)[0]
    assert "python -m tools.audit_pack --out build/audit" in recipe


def test_the_integration_tier_installs_what_the_audit_pack_test_drives() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    packages = re.search(r"^APT_PACKAGES := (.+)$", makefile, flags=re.MULTILINE)
    probes = re.search(r"^APT_PROBES := (.+)$", makefile, flags=re.MULTILINE)
    assert packages is not None
    assert probes is not None
    assert {"chromium", "poppler-utils"} <= set(packages.group(1).split())
    assert {"chromium", "pdftoppm"} <= set(probes.group(1).split())
