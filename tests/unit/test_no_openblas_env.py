"""The project never sets or unsets OPENBLAS_* variables: some machines set them for
correctness, and `dvc repro` must reproduce whatever kernel a machine uses. Prose that tells
a reader how to try a kernel by hand (README, docs/) may name them; code, configuration,
CI and the Makefile may not."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]
PROSE = (".md",)
VARIABLE = re.compile(r"OPENBLAS_[A-Z_]+")
THIS_FILE = "tests/unit/test_no_openblas_env.py"


def test_no_file_but_prose_names_an_openblas_variable() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for raw in tracked:
        name = raw.decode()
        if not name or name.endswith(PROSE) or name == THIS_FILE:
            continue
        path = REPO_ROOT / name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if VARIABLE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
