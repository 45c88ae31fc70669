"""Fixtures for tests of the trained model artifact (run `dvc repro` first)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.artifacts import read_json, read_npz
from tests.artifacts import require_artifact
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="session")
def onnx_bytes() -> bytes:
    """The trained, exported model."""
    return require_artifact(REPO_ROOT / "models" / "model.onnx").read_bytes()


@pytest.fixture(scope="session")
def model_metadata() -> dict[str, Any]:
    """``models/model.json``."""
    metadata: dict[str, Any] = read_json(require_artifact(REPO_ROOT / "models" / "model.json"))
    return metadata


@pytest.fixture(scope="session")
def test_split() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The held-out split written by data-prep."""
    arrays = read_npz(require_artifact(REPO_ROOT / "data" / "prepared" / "test.npz"), ("X", "y"))
    return arrays["X"], arrays["y"]
