"""The exported model and detector under small, seeded versions of the robustness stress tests.

Floors are the default model's measured values (reports/robustness.json) minus
a margin of three binomial standard errors on the 450-row test split, rounded
down to two decimals; flip-rate and silent-error ceilings are the measured rate plus three
standard errors, rounded up. The noise draws here are seeded differently from
the stage's, hence the margin.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.classifier import onnx_predict, onnx_scores
from stages.lib.perturbations import (
    TRANSLATIONS,
    Translation,
    gaussian_noise,
    occlusion,
    salt_and_pepper,
    translate,
)
from tests.artifacts import require_artifact
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.model

Split = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]
N_TEST = 450
# Measured by the robustness stage for the selected model (reports/robustness.json).
MEASURED_NOISE_05 = 0.9844  # gaussian_noise sigma=0.5: accuracy
MEASURED_NOISE_05_FLIPS = 0.0044  # ... and flip rate
MEASURED_SALT_002 = 0.9311  # salt_and_pepper rate 0.02
MEASURED_OCCLUSION_2 = 0.9178  # occlusion 2x2
# 1-pixel shifts in the 8 directions: accuracy, and silent errors (wrong, not flagged).
MEASURED_SHIFT_1 = {
    "up": 0.96,
    "down": 0.98,
    "left": 0.9844,
    "right": 0.9822,
    "up_left": 0.96,
    "up_right": 0.96,
    "down_left": 0.98,
    "down_right": 0.9778,
}
MEASURED_SILENT_1 = {
    "up": 0.04,
    "down": 0.02,
    "left": 0.0156,
    "right": 0.0133,
    "up_left": 0.04,
    "up_right": 0.0378,
    "down_left": 0.02,
    "down_right": 0.0222,
}


def _margin(p: float) -> float:
    return 3 * math.sqrt(p * (1 - p) / N_TEST)


def floor(measured: float) -> float:
    """Measured accuracy minus three standard errors, rounded down to 0.01."""
    return math.floor((measured - _margin(measured)) * 100) / 100


def ceiling(measured: float) -> float:
    """Measured rate plus three standard errors, rounded up to 0.01."""
    return math.ceil((measured + _margin(measured)) * 100) / 100


@pytest.fixture(scope="module")
def ood_bytes() -> bytes:
    """The served out-of-distribution detector."""
    return require_artifact(REPO_ROOT / "models" / "ood.onnx").read_bytes()


def test_floors_follow_the_stated_derivation() -> None:
    assert floor(MEASURED_NOISE_05) == 0.96
    assert ceiling(MEASURED_NOISE_05_FLIPS) == 0.02
    assert floor(MEASURED_SALT_002) == 0.89
    assert floor(MEASURED_OCCLUSION_2) == 0.87
    assert [floor(MEASURED_SHIFT_1[d]) for d in TRANSLATIONS] == [
        0.93, 0.96, 0.96, 0.96, 0.93, 0.93, 0.96, 0.95
    ]  # fmt: skip
    assert [ceiling(MEASURED_SILENT_1[d]) for d in TRANSLATIONS] == [
        0.07, 0.04, 0.04, 0.03, 0.07, 0.07, 0.04, 0.05
    ]  # fmt: skip


def _accuracy_and_flips(
    onnx_bytes: bytes,
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    perturbed: npt.NDArray[np.float64],
) -> tuple[float, float]:
    clean, _ = onnx_predict(onnx_bytes, X)
    labels, _ = onnx_predict(onnx_bytes, perturbed)
    return float(np.mean(labels == y)), float(np.mean(labels != clean))


def test_mild_gaussian_noise(onnx_bytes: bytes, test_split: Split) -> None:
    X, y = test_split
    noisy = gaussian_noise(X, 0.5, np.random.default_rng(0))
    accuracy, flips = _accuracy_and_flips(onnx_bytes, X, y, noisy)
    assert accuracy >= floor(MEASURED_NOISE_05), f"accuracy under sigma=0.5 noise is {accuracy:.3f}"
    assert flips <= ceiling(MEASURED_NOISE_05_FLIPS), (
        f"{flips:.3f} of predictions flip under sigma=0.5 noise"
    )


def test_sparse_salt_and_pepper(onnx_bytes: bytes, test_split: Split) -> None:
    X, y = test_split
    noisy = salt_and_pepper(X, 0.02, np.random.default_rng(0))
    accuracy, _ = _accuracy_and_flips(onnx_bytes, X, y, noisy)
    assert accuracy >= floor(MEASURED_SALT_002), (
        f"accuracy with 2% salt-and-pepper pixels is {accuracy:.3f}"
    )


def test_small_occlusion(onnx_bytes: bytes, test_split: Split) -> None:
    X, y = test_split
    occluded = occlusion(X, 2, np.random.default_rng(0))
    accuracy, _ = _accuracy_and_flips(onnx_bytes, X, y, occluded)
    assert accuracy >= floor(MEASURED_OCCLUSION_2), (
        f"accuracy with a 2x2 patch occluded is {accuracy:.3f}"
    )


@pytest.mark.parametrize("direction", TRANSLATIONS)
def test_one_pixel_shift_keeps_accuracy_and_errors_are_not_silent(
    onnx_bytes: bytes, ood_bytes: bytes, test_split: Split, direction: Translation
) -> None:
    # Aligned, and trained with 1-pixel shifted copies in 8 directions, the selected model keeps
    # its accuracy (the old pixel-wise logistic regression fell to 0.29..0.39 on the 4 axes;
    # without the alignment and the diagonals, diagonal shifts read 0.62..0.68).
    X, y = test_split
    moved = translate(X, direction, 1)
    accuracy, _ = _accuracy_and_flips(onnx_bytes, X, y, moved)
    assert accuracy >= floor(MEASURED_SHIFT_1[direction]), (
        f"accuracy after a 1-pixel {direction} shift is {accuracy:.3f}"
    )
    wrong = onnx_predict(onnx_bytes, moved)[0] != y
    silent = float(np.mean(wrong & (onnx_scores(ood_bytes, moved) <= 1.0)))
    assert silent <= ceiling(MEASURED_SILENT_1[direction]), (
        f"{silent:.3f} of digits shifted 1 pixel {direction} are read wrong and not flagged"
    )


def test_digits_cut_at_the_frame_are_flagged_not_answered_silently(
    onnx_bytes: bytes, ood_bytes: bytes, test_split: Split
) -> None:
    # Every digit fills the frame's height, so a 2-pixel vertical (or diagonal) shift cuts off
    # ink the alignment cannot restore: the model misreads many (0.54..0.74 read right), and
    # the detector's ink-cut rule flags every one, so none of those errors is silent.
    X, y = test_split
    for direction in ("up", "down", "up_left", "up_right", "down_left", "down_right"):
        moved = translate(X, direction, 2)
        accuracy = float(np.mean(onnx_predict(onnx_bytes, moved)[0] == y))
        assert 0.4 < accuracy < 0.9, (direction, accuracy)  # the limitation is real
        assert np.all(onnx_scores(ood_bytes, moved) >= 2.0), direction
    # A vacated row with noise is not blank: then the rule is blind (risk register R39).
    noisy = gaussian_noise(translate(X, "up", 2), 2.0, np.random.default_rng(3))
    assert float(np.mean(onnx_scores(ood_bytes, noisy) >= 2.0)) < 0.5
