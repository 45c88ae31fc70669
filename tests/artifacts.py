"""Pipeline artifacts that a test needs: a clear failure when `dvc repro` has not run."""

from __future__ import annotations

from pathlib import Path

import pytest


def require_artifact(path: Path) -> Path:
    """``path``, or fail the test saying how to produce it."""
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `dvc repro` (make test does) before the model tests")
    return path
