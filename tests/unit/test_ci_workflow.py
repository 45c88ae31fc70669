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
    tiers = {"test-unit", "test-model", "test-integration"}
    assert set(jobs) >= {"lint", "types", "pipeline", "container", "sbom", "review"} | tiers
    runs = {
        name: " ".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()
    }
    for tier in tiers:
        assert f"make {tier}" in runs[tier]
    assert "make system-deps" in runs["test-integration"]  # as root in its Debian container
    assert "make pipeline" in runs["pipeline"]
    assert "git diff --exit-code" in runs["pipeline"]
    assert ".venv/bin/python -m tools.lock_diff reports/ docs/" in runs["pipeline"]
    assert "dvc repro" in runs["pipeline"]
    assert "hadolint" in runs["container"]
    assert "dvc metrics diff" in runs["review"]
    assert "dvc params diff" in runs["review"]
    assert "GITHUB_STEP_SUMMARY" in runs["review"]
    assert jobs["review"]["if"] == "github.event_name == 'pull_request'"


def test_the_tier_jobs_together_check_the_cited_tests_as_make_test_does(
    workflow: dict[str, Any],
) -> None:
    """Every tier job uploads its JUnit reports; the citation check waits for all three and
    merges exactly the reports `make test` merges, then runs the same check."""
    jobs = workflow["jobs"]
    tiers = ["test-unit", "test-model", "test-integration"]
    check = jobs["cited-tests"]
    assert sorted(check["needs"]) == sorted(tiers)
    for tier in tiers:
        upload = next(s for s in jobs[tier]["steps"] if "upload-artifact" in s.get("uses", ""))
        assert upload["with"]["path"] == "build/junit/"
        assert upload["with"]["name"] == f"junit-{tier.removeprefix('test-')}"
        assert upload["with"]["if-no-files-found"] == "error"
        assert upload["if"] == "${{ !cancelled() }}"
    download = next(s for s in check["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"] == {
        "pattern": "junit-*",
        "path": "build/junit/",
        "merge-multiple": True,
    }
    script = " ".join(check["steps"][-1]["run"].replace("\\\n", " ").split())
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest: ", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    merge = next(line for line in recipe.splitlines() if "tools.junit_merge" in line)
    made = " ".join(merge.replace("$(JUNIT)", "build/junit").split())
    assert ".venv/bin/" + made in script
    assert script.endswith(".venv/bin/python -m tools.cited_tests build/test-report.xml")


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


RELEASE_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "release.yml"


@pytest.fixture(scope="module")
def release() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(RELEASE_WORKFLOW.read_text(encoding="utf-8"))
    return document


def _step(job: dict[str, Any], name_part: str) -> dict[str, Any]:
    return next(step for step in job["steps"] if name_part in step.get("name", ""))


def _run_step_without_secrets(step: dict[str, Any], tmp_path: Path) -> tuple[str, str]:
    """Run a step's shell with its secrets empty, as on a fork: (stdout, GITHUB_OUTPUT)."""
    output = tmp_path / "github_output"
    output.write_text("", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "RUNNER_TEMP": str(tmp_path)}
    env |= dict.fromkeys(step.get("env", {}), "")
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, output.read_text(encoding="utf-8")


def test_main_pushes_artifacts_and_signs_or_says_why_not(
    workflow: dict[str, Any], tmp_path: Path
) -> None:
    job = workflow["jobs"]["artifacts"]
    assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    push = _step(job, "Push every DVC-tracked artifact")
    assert "make push" in push["run"]
    assert push["env"]["DVC_REMOTE_URL"] == "${{ secrets.DVC_REMOTE_URL }}"
    stdout, _ = _run_step_without_secrets(push, tmp_path)
    assert stdout.startswith("::notice title=DVC artifacts not pushed::")
    sign = _step(job, "Sign the served files")
    assert 'make sign KEY="$key"' in sign["run"]
    stdout, outputs = _run_step_without_secrets(sign, tmp_path)
    assert stdout.startswith("::notice title=Model not signed::")
    assert "signed=false" in outputs


def test_release_workflow_is_valid_pinned_and_least_privilege(release: dict[Any, Any]) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(RELEASE_WORKFLOW),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert release[True]["push"] == {"tags": ["digits-classifier@v*"]}  # YAML 1.1: on -> True
    assert release["permissions"] == {"contents": "read"}
    job = release["jobs"]["publish"]
    assert job["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    assert 0 < job["timeout-minutes"] <= 60
    uses = [step["uses"] for step in job["steps"] if "uses" in step]
    assert all(PINNED.match(ref) for ref in uses), uses
    assert any(ref.startswith("sigstore/cosign-installer@") for ref in uses)
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert "cache" not in setup["with"]  # no cache in a publishing workflow


def test_release_image_is_built_from_the_registry_labelled_pushed_and_signed(
    release: dict[Any, Any], tmp_path: Path
) -> None:
    job = release["jobs"]["publish"]
    bundle = _step(job, "Bundle of this release")
    assert 'tools.registry_bundle "$RELEASE_TAG"' in bundle["run"]
    assert "make pipeline" not in " ".join(s.get("run", "") for s in job["steps"])
    stdout, outputs = _run_step_without_secrets(bundle, tmp_path)
    assert stdout.startswith("::notice title=Release image not built::")
    assert "ready=false" in outputs
    build = _step(job, "Build the image")
    for arg in ("MODEL_VERSION", "VCS_REF", "REGISTRY_VERSION", "REGISTRY_STAGE", "REGISTRY_REF"):
        assert f"--build-arg {arg}=" in build["run"]
    push = _step(job, "Push to GHCR")
    assert push["env"]["CR_PAT"] == "${{ secrets.CR_PAT }}"
    assert 'docker push "$image:$version"' in push["run"]
    stdout, outputs = _run_step_without_secrets(push, tmp_path)
    assert stdout.startswith("::notice title=Image not published::")
    assert "pushed=false" in outputs
    cosign = _step(job, "Sign the image by digest")
    assert cosign["run"] == 'cosign sign --yes "$IMAGE_REF"'
    assert cosign["if"] == "steps.push.outputs.pushed == 'true'"


def test_release_uploads_controlled_copies_of_the_audit_documents(
    release: dict[Any, Any],
) -> None:
    job = release["jobs"]["publish"]
    steps = job["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the change history needs the full log
    copies = _step(job, "Controlled copies of the audit documents")
    assert copies["run"] == "make controlled-docs"
    upload = _step(job, "Attach the controlled copies")
    assert PINNED.match(upload["uses"])
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "build/controlled-docs/"
    assert upload["with"]["if-no-files-found"] == "error"
    assert "if" not in copies
    assert "if" not in upload  # every release carries them: no secret is needed
    assert steps.index(checkout) < steps.index(copies) < steps.index(upload)
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "python -m tools.controlled_docs --out build/controlled-docs\n" in makefile
