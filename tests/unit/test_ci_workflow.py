"""The GitHub Actions workflow is valid, pinned, least-privilege and runs what users run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, VENV_BIN

pytestmark = pytest.mark.unit

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return document


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflow_matches_the_github_schema() -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "zizmor"), "--offline", "--no-progress", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_zizmor_audit_finds_nothing() -> None:
    result = zizmor(WORKFLOW.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_zizmor_flags_a_checkout_that_persists_credentials(tmp_path: Path) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    # Drop the setting (and a `with:` left empty): checkout's default keeps the token.
    weakened = re.sub(r"\n *with:\n *persist-credentials: false(?=\n)", "", text)
    weakened = re.sub(r"\n *persist-credentials: false(?=\n)", "", weakened)
    assert "persist-credentials" not in weakened
    copy = tmp_path / "ci.yml"
    copy.write_text(weakened, encoding="utf-8")
    result = zizmor(copy)
    assert result.returncode != 0
    assert "artipacked" in result.stdout + result.stderr


def test_every_checkout_drops_the_token_after_cloning(workflow: dict[str, Any]) -> None:
    checkouts = [s for s in _steps(workflow) if s.get("uses", "").startswith("actions/checkout")]
    assert len(checkouts) == len(workflow["jobs"])
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


def test_every_action_is_pinned_to_a_commit(workflow: dict[str, Any]) -> None:
    uses = [step["uses"] for step in _steps(workflow) if "uses" in step]
    assert uses
    unpinned = [ref for ref in uses if not PINNED.match(ref)]
    assert unpinned == []


def test_default_token_is_read_only(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert job.get("permissions", {}).get("contents", "read") == "read", name


def test_every_job_has_a_timeout(workflow: dict[str, Any]) -> None:
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 60, name


def test_required_jobs_exist_and_run_the_project_commands(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    assert set(jobs) >= {"lint", "types", "tests", "pipeline", "container", "sbom", "review"}
    runs = {
        name: " ".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()
    }
    assert "make test" in runs["tests"]
    assert "make pipeline" in runs["pipeline"]
    assert "git diff --exit-code" in runs["pipeline"]
    assert "dvc repro" in runs["pipeline"]
    assert "hadolint" in runs["container"]
    assert "dvc metrics diff" in runs["review"]
    assert "dvc params diff" in runs["review"]
    assert "GITHUB_STEP_SUMMARY" in runs["review"]
    assert jobs["review"]["if"] == "github.event_name == 'pull_request'"


def test_dependency_cache_is_keyed_on_the_lock(workflow: dict[str, Any]) -> None:
    setups = [s for s in _steps(workflow) if s.get("uses", "").startswith("actions/setup-python")]
    assert setups
    for step in setups:
        assert step["with"]["cache-dependency-path"] == "requirements/dev.lock"


def test_ci_entry_point_runs_the_readme_test_command() -> None:
    readme_first_block = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("```")[1]
    assert "make test" in readme_first_block
    ci_commands = [
        line.strip()
        for line in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert ci_commands == ["make test"]


def test_container_job_scans_the_built_image_with_trivy(workflow: dict[str, Any]) -> None:
    steps = workflow["jobs"]["container"]["steps"]
    names = [step.get("name", step.get("uses", "")) for step in steps]
    build_index = next(i for i, s in enumerate(steps) if "docker build" in s.get("run", ""))
    match = re.search(r"docker build .*?-t (\S+)", " ".join(steps[build_index]["run"].split()))
    assert match, steps[build_index]["run"]
    built_tag = match.group(1)
    scans = [
        (i, s)
        for i, s in enumerate(steps)
        if s.get("uses", "").startswith("aquasecurity/trivy-action@")
    ]
    assert len(scans) == 1, names
    scan_index, scan = scans[0]
    assert scan_index > build_index, "the scan must run on the image this job just built"
    settings = scan["with"]
    assert settings["image-ref"] == built_tag
    assert {"CRITICAL", "HIGH"} <= set(settings["severity"].split(","))
    assert str(settings["exit-code"]) == "1", "a finding must fail the job"
    assert "continue-on-error" not in scan
    assert "if" not in scan
