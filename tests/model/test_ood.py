"""The out-of-distribution detector: ONNX parity, calibration, and what it flags.

Fitted here on the prepared training split with the repository's params, exactly
as the ``ood`` stage does, and compared with the served ``models/ood.onnx``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.artifacts import read_json, read_npz
from stages.lib.augment import augment, validation_split
from stages.lib.canonical import canonical_float
from stages.lib.classifier import onnx_scores
from stages.lib.params import Params, load_params
from stages.lib.perturbations import TRANSLATIONS, translate
from stages.ood import PARITY_ATOL, PARITY_RTOL, Detector, export_detector, fit_detector
from stages.ood_evaluate import ood_report, synthetic_sets
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.model

Split = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


def _split(name: str) -> Split:
    path = REPO_ROOT / "data" / "prepared" / f"{name}.npz"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `dvc repro` (make test does) first")
    arrays = read_npz(path, ("X", "y"))
    return arrays["X"], arrays["y"]


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(REPO_ROOT / "params.yaml")


@pytest.fixture(scope="module")
def train() -> Split:
    return _split("train")


@pytest.fixture(scope="module")
def held_out() -> npt.NDArray[np.float64]:
    return _split("test")[0]


@pytest.fixture(scope="module")
def detector(train: Split, params: Params) -> Detector:
    return fit_detector(train[0], train[1], params)


@pytest.fixture(scope="module")
def served() -> bytes:
    path = REPO_ROOT / "models" / "ood.onnx"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `dvc repro` (make test does) first")
    return path.read_bytes()


def test_refit_reproduces_the_served_detector(detector: Detector, served: bytes) -> None:
    recorded: dict[str, Any] = read_json(REPO_ROOT / "models" / "ood.json")
    for name in ("t2_scale", "q_scale", "threshold"):
        value = getattr(detector, name)
        assert value == float(np.float32(value))  # canonical: float32 from the fit on
        assert canonical_float(value) == recorded[name]  # written at report precision
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        assert export_detector(detector) == served


def test_onnx_score_equals_the_numpy_score(
    detector: Detector, served: bytes, held_out: npt.NDArray[np.float64], params: Params
) -> None:
    inputs = np.concatenate(
        [held_out, *synthetic_sets(held_out, 50, params.seed).values()], dtype=np.float64
    )
    expected = detector.score(inputs)
    got = onnx_scores(served, inputs)
    assert got.shape == (len(inputs),)
    np.testing.assert_allclose(got, expected, rtol=PARITY_RTOL, atol=PARITY_ATOL)
    # Tight enough that no row crosses the flag line between the two.
    np.testing.assert_array_equal(got > 1.0, expected > 1.0)


def test_a_rows_score_does_not_depend_on_its_batch(
    served: bytes, held_out: npt.NDArray[np.float64]
) -> None:
    # The service batches requests together: a row's score must be bit-identical alone,
    # at any position of any batch (ONNX Runtime's ReduceSum is not; the graph avoids it).
    alone = np.concatenate([onnx_scores(served, row[None, :]) for row in held_out[:40]])
    together = onnx_scores(served, held_out[:40])
    np.testing.assert_array_equal(together, alone)
    for size in (2, 3, 7, 33):
        tiled = onnx_scores(served, np.repeat(held_out[:5], size, axis=0)).reshape(5, size)
        np.testing.assert_array_equal(tiled, np.repeat(alone[:5, None], size, axis=1))


def test_threshold_flags_the_target_rate_of_the_augmented_validation_split(
    detector: Detector, train: Split, params: Params
) -> None:
    X, y = train
    _, validation = validation_split(y, params.train.selection.validation_size, params.seed)
    X_val, _ = augment(X[validation], y[validation], params.train.augment, params.seed)
    flagged = float(np.mean(detector.score(X_val) > 1.0))
    target = params.ood.target_false_positive_rate
    assert flagged == pytest.approx(target, abs=1.0 / len(X_val) + 1e-12)


def test_non_digits_are_flagged(served: bytes, params: Params) -> None:
    rng = np.random.default_rng(11)
    non_digits = {
        "blank": np.zeros((1, 64)),
        "all_16": np.full((1, 64), 16.0),
        "uniform_noise": rng.uniform(0.0, 16.0, size=(50, 64)),
    }
    for name, X in non_digits.items():
        scores = onnx_scores(served, X)
        assert np.all(scores > 1.0), f"{name}: scores {scores.min():.3f}..{scores.max():.3f}"


def test_clean_and_shifted_test_digits_are_mostly_not_flagged(
    served: bytes, held_out: npt.NDArray[np.float64], params: Params
) -> None:
    gates = params.ood.gates
    assert (
        float(np.mean(onnx_scores(served, held_out) > 1.0))
        <= gates.max_false_positive_rate.threshold
    )
    # The detector scores the input pixels (not the aligned ones): 1-pixel shifts in the 8
    # directions were in its fitting data, and it lets them through as it lets clean digits.
    shifted = np.concatenate([translate(held_out, d, 1) for d in TRANSLATIONS])
    flagged = float(np.mean(onnx_scores(served, shifted) > 1.0))
    assert flagged <= gates.max_false_positive_rate_shifted.threshold
    for direction in TRANSLATIONS:  # no direction is flagged much more than the others
        moved = translate(held_out, direction, 1)
        assert float(np.mean(onnx_scores(served, moved) > 1.0)) <= 0.04, direction


def test_synthetic_sets_are_deterministic_and_in_pixel_range(
    held_out: npt.NDArray[np.float64],
) -> None:
    first = synthetic_sets(held_out, 20, seed=5)
    again = synthetic_sets(held_out, 20, seed=5)
    assert set(first) == {
        "blank",
        "all_16",
        "uniform_noise",
        "inverted",
        "sparse_0_16",
        "checkerboard",
    }
    for name, X in first.items():
        np.testing.assert_array_equal(X, again[name])
        assert X.shape[1] == 64
        assert X.min() >= 0.0
        assert X.max() <= 16.0
        assert len(X) == (len(held_out) if name == "inverted" else 20)
    np.testing.assert_array_equal(first["inverted"], 16.0 - held_out)


def test_report_gates_follow_the_scores(
    detector: Detector, held_out: npt.NDArray[np.float64], params: Params
) -> None:
    report = ood_report(held_out, detector.score, params.ood, params.seed, 0.95)
    assert report["passed"] is True
    assert report["false_positive"]["clean_test"]["n"] == len(held_out)
    for name in params.ood.gates.gated_sets:
        assert report["detection"][name]["rate"] >= params.ood.gates.min_detection_rate.threshold
        assert report["detection"][name]["auroc"] > 0.99
    gate = report["gates"]["max_false_positive_rate"]
    assert gate["kind"] == "max"
    assert gate["rationale"] == params.ood.gates.max_false_positive_rate.rationale

    # A detector that flags everything is caught by the false-positive gate.
    def flag_all(X: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.full(len(X), 2.0)

    everything = ood_report(held_out, flag_all, params.ood, params.seed, 0.95)
    assert everything["passed"] is False
    assert everything["gates"]["max_false_positive_rate"]["passed"] is False
    assert everything["gates"]["min_detection_rate"]["passed"] is True
