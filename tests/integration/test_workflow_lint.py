"""`make lint` really lints the GitHub workflows: actionlint (with shellcheck on every `run:`
script) and zizmor find nothing in .github/workflows, and a copy broken in one known way fails
the same make target with the finding named, so the check cannot silently be a no-op."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.doc_examples import examples_for

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# One actionlint finding per rule a break must trigger: "file:line:col: message [rule]".
FINDING = re.compile(
    r"^(?P<file>[^:\s]+\.yml):(?P<line>\d+):(?P<col>\d+): .* \[(?P<rule>[\w-]+)\]$"
)


def lint_workflows(folder: Path) -> subprocess.CompletedProcess[str]:
    """The workflow part of `make lint` (make lint-workflows), on FOLDER's *.yml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", "lint-workflows", f"WORKFLOWS={folder}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def findings(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    """(file name, rule) of every actionlint finding in the output."""
    lines = (result.stdout + result.stderr).splitlines()
    return [(Path(m["file"]).name, m["rule"]) for m in map(FINDING.match, lines) if m is not None]


def test_make_lint_finds_nothing_in_the_workflows() -> None:
    """docs/ci.md's command for the workflow checks, as written, on the real workflows."""
    recipe = (REPO_ROOT / "Makefile").read_text(encoding="utf-8").split("\nlint: ", 1)[1]
    assert "lint-workflows" in recipe.split("\n", 1)[0], "make lint must run lint-workflows"
    blocks = examples_for(
        "tests/integration/test_workflow_lint.py::test_make_lint_finds_nothing_in_the_workflows"
    )
    assert blocks, "docs/ci.md no longer names this test for its make lint-workflows block"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(block.text for block in blocks)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "actionlint -shellcheck shellcheck .github/workflows/*.yml" in output
    assert findings(result) == []
    assert "No findings to report" in output  # zizmor ran too


# Each break: (what it replaces in ci.yml, its replacement, the actionlint rule that must fire).
BREAKS = {
    # shellcheck, through actionlint: an unquoted expansion in a run script (SC2086)
    "shellcheck": ("run: make test-unit", "run: make test-unit $EXTRA_ARGS", "shellcheck"),
    # actionlint's own expression check: the output of a step that does not exist
    "expression": (
        "if: steps.sign.outputs.signed == 'true'",
        "if: steps.no-such-step.outputs.signed == 'true'",
        "expression",
    ),
    # a job that needs a job the workflow does not have
    "job-needs": ("needs: [pipeline]\n    steps:", "needs: [no-such-job]\n    steps:", "job-needs"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_broken_workflow_copy_fails_make_lint(name: str, tmp_path: Path) -> None:
    old, new, rule = BREAKS[name]
    copy = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, copy)
    ci = copy / "ci.yml"
    text = ci.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"the break {name!r} no longer applies to ci.yml"
    ci.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = lint_workflows(copy)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert findings(result) == [("ci.yml", rule)], output
    if rule == "shellcheck":
        assert "SC2086" in output
