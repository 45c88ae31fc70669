"""The test tiers are the folders: tests/conftest.py gives every test its folder's marker and
refuses a test that `make test` would run wrongly or not at all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

MARKERS = """[tool.pytest.ini_options]
addopts = ["--strict-markers", "--import-mode=importlib"]
markers = ["unit: u", "model: m", "integration: i", "serial: s", "slow: l"]
"""


def collect(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest --collect-only -q`` in ``root`` (no xdist, no cache)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def suite(tmp_path: Path, files: dict[str, str]) -> Path:
    """A throwaway project with this repository's tests/conftest.py and ``files`` under tests/."""
    (tmp_path / "pyproject.toml").write_text(MARKERS, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    shutil.copyfile(REPO_ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    for relative, text in files.items():
        path = tmp_path / "tests" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("import pytest\n\n" + text, encoding="utf-8")
    return tmp_path


def a_test(marks: str = "") -> str:
    return (f"pytestmark = [{marks}]\n\n" if marks else "") + "def test_it() -> None:\n    pass\n"


def test_misplaced_tests_stop_the_run_each_named(tmp_path: Path) -> None:
    root = suite(
        tmp_path,
        {
            "unit/test_other_tier.py": a_test("pytest.mark.model"),
            "model/test_as_int.py": a_test("pytest.mark.integration"),
            "test_no_tier.py": a_test(),
            "unit/test_serial.py": a_test("pytest.mark.serial"),
            "integration/test_fine.py": a_test("pytest.mark.serial"),
        },
    )
    result = collect(root)
    assert result.returncode != 0
    refusals = result.stderr.split("do not match folders:\n", 1)[1].strip().splitlines()
    assert refusals == [
        "tests/model/test_as_int.py::test_it: marked ['integration'], lives in tests/model/",
        "tests/test_no_tier.py::test_it: not in a tier folder (tests/{unit,model,integration}/)",
        "tests/unit/test_other_tier.py::test_it: marked ['model'], lives in tests/unit/",
        "tests/unit/test_serial.py::test_it: only the integration tier runs serial tests apart",
    ]


def test_each_folder_gets_its_marker_and_slow_files_come_first(tmp_path: Path) -> None:
    root = suite(
        tmp_path,
        {
            "unit/test_a.py": a_test(),
            "model/test_b.py": a_test(),
            "integration/test_c.py": a_test(),
            "integration/test_d.py": a_test("pytest.mark.slow"),
        },
    )
    unit = [line for line in collect(root, "-m", "unit").stdout.splitlines() if "::" in line]
    assert unit == ["tests/unit/test_a.py::test_it"]
    ids = [line for line in collect(root, "-m", "integration").stdout.splitlines() if "::" in line]
    assert ids == ["tests/integration/test_d.py::test_it", "tests/integration/test_c.py::test_it"]
