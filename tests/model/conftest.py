"""Fixtures for tests of the trained model artifact (run `dvc repro` first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.artifacts import read_json, read_npz
from tests.conftest import REPO_ROOT


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `dvc repro` (make test does) before the model tests")
    return path


@pytest.fixture(scope="session")
def onnx_bytes() -> bytes:
    """The trained, exported model."""
    return _require(REPO_ROOT / "models" / "model.onnx").read_bytes()


@pytest.fixture(scope="session")
def model_metadata() -> dict[str, Any]:
    """``models/model.json``."""
    metadata: dict[str, Any] = read_json(_require(REPO_ROOT / "models" / "model.json"))
    return metadata


@pytest.fixture(scope="session")
def test_split() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The held-out split written by data-prep."""
    arrays = read_npz(_require(REPO_ROOT / "data" / "prepared" / "test.npz"), ("X", "y"))
    return arrays["X"], arrays["y"]
