"""The GitHub integration-test job runs where the Debian test tools install (docs/ci.md): a
Debian job container of the same release as the image's base and `make base-image`, set up
so that checkout, make and the tests' podman work in it; the lint job has shellcheck."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def jobs() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return dict(document["jobs"])


def _index(steps: list[dict[str, Any]], needle: str) -> int:
    """The index of the first step whose run script or action contains NEEDLE."""
    hits = [i for i, s in enumerate(steps) if needle in s.get("run", s.get("uses", ""))]
    assert hits, f"no step runs or uses {needle!r}"
    return hits[0]


def _suite_of_dockerfile_base() -> str:
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^ARG BASE_IMAGE=python:[\d.]+-slim-(\w+)$", text, re.MULTILINE)
    assert match, "the Dockerfile's default base is no longer python:X.Y-slim-<suite>"
    return match.group(1)


def _suite_of_base_image_script() -> str:
    text = (REPO_ROOT / "deploy" / "podman" / "build-base-image.sh").read_text(encoding="utf-8")
    match = re.search(r'^SUITE="\$\{DEBIAN_SUITE:-(\w+)\}"$', text, re.MULTILINE)
    assert match, "build-base-image.sh no longer defaults DEBIAN_SUITE"
    return match.group(1)


def test_integration_job_runs_in_the_debian_release_of_the_image_base(
    jobs: dict[str, Any],
) -> None:
    image = jobs["test-integration"]["container"]["image"]
    assert image == f"debian:{_suite_of_dockerfile_base()}"
    assert image == f"debian:{_suite_of_base_image_script()}"


def test_integration_container_lets_the_tests_run_podman(jobs: dict[str, Any]) -> None:
    container = jobs["test-integration"]["container"]
    options = container["options"].split()
    assert "--privileged" in options  # namespaces, mounts, devices for the nested containers
    assert "--cgroupns=host" in options  # cgroups the nested runtime can create
    # podman's overlay storage on a volume (the runner's disk), not on the overlay root
    assert "/var/lib/containers" in container["volumes"]


def test_integration_steps_bootstrap_the_bare_debian_image_in_order(
    jobs: dict[str, Any],
) -> None:
    steps = jobs["test-integration"]["steps"]
    scripts = " ".join(step.get("run", "") for step in steps)
    assert "sudo" not in scripts  # root in the container; the image has no sudo
    assert not any("setup-python" in s.get("uses", "") for s in steps)  # bookworm's python3
    bootstrap = steps[_index(steps, "apt-get install")]["run"]
    # git before checkout: without it actions/checkout downloads a tarball with no .git,
    # and dvc, GTO and the tests need the repository
    for package in ("git", "make", "python3", "python3-venv", "ca-certificates"):
        assert re.search(rf"\s{re.escape(package)}(\s|$)", bootstrap), package
    order = [
        _index(steps, "apt-get install"),
        _index(steps, "actions/checkout@"),
        _index(steps, "safe.directory"),
        _index(steps, "make system-deps"),
        _index(steps, "make test-integration"),
        _index(steps, "actions/upload-artifact@"),
    ]
    assert order == sorted(order)


def test_lint_job_installs_shellcheck_before_make_lint(jobs: dict[str, Any]) -> None:
    steps = jobs["lint"]["steps"]
    runs = [step.get("run", "").strip() for step in steps]
    assert runs.index("sudo make lint-deps") < runs.index("make lint")
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    lint_packages = re.search(r"^LINT_APT_PACKAGES := (.*)$", makefile, re.MULTILINE)
    all_packages = re.search(r"^APT_PACKAGES := (.*)$", makefile, re.MULTILINE)
    assert lint_packages
    assert all_packages
    assert set(lint_packages.group(1).split()) == {"shellcheck"}
    assert "shellcheck" in all_packages.group(1).split()  # make system-deps covers make lint
