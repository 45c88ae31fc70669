"""Each stage's output writer writes the same bytes when its values move by a few ulps.

The values are the raw ones each stage computes (its own functions, on the pipeline's real
artifacts), before any rounding; moved by a few ulps they stand for what another CPU's
BLAS kernel would compute. Written through the stage's writer, both give identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages import data_prep, evaluate, ood, ood_evaluate, robustness, select
from stages.lib import classifier, stress
from stages.lib.artifacts import read_bytes, read_npz, write_json
from stages.lib.classifier import onnx_predict
from stages.lib.params import Params, load_params
from stages.train import Parity, model_metadata
from tests.artifacts import require_artifact
from tests.conftest import REPO_ROOT
from tests.ulps import perturb

ULPS = (1, -1, 4, -4)


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(REPO_ROOT / "params.yaml")


@pytest.fixture(scope="module")
def split() -> dict[str, dict[str, Any]]:
    names = ("X", "y")
    prepared = REPO_ROOT / "data" / "prepared"
    return {
        "train": read_npz(require_artifact(prepared / "train.npz"), names),
        "test": read_npz(require_artifact(prepared / "test.npz"), names),
    }


@pytest.fixture(scope="module")
def served() -> bytes:
    return require_artifact(REPO_ROOT / "models" / "model.onnx").read_bytes()


def _floats(payload: Any) -> list[float]:
    if isinstance(payload, (float, np.floating)):
        return [float(payload)]
    if isinstance(payload, dict):
        return [f for value in payload.values() for f in _floats(value)]
    if isinstance(payload, (list, tuple)):
        return [f for value in payload for f in _floats(value)]
    return []


def assert_writer_absorbs_ulps(payload: Any, tmp_path: Path) -> None:
    """The stage writer's bytes for ``payload`` equal those for ``payload`` moved a few ulps."""
    raw = _floats(payload)
    # Not vacuous: the payload carries floats that plain JSON would write with noise digits.
    assert any(len(repr(v)) > 12 for v in raw), "payload has no raw floats to absorb"
    write_json(tmp_path / "exact.json", payload)
    expected = (tmp_path / "exact.json").read_bytes()
    for ulps in ULPS:
        write_json(tmp_path / f"moved{ulps}.json", perturb(payload, ulps))
        assert (tmp_path / f"moved{ulps}.json").read_bytes() == expected, f"{ulps} ulps"
    assert json.loads(expected)  # and it is the JSON the stage would write


def test_data_prep_reference_stats(params: Params, tmp_path: Path) -> None:
    _, stats = data_prep.prepare(params.data, params.seed, REPO_ROOT)
    assert_writer_absorbs_ulps(stats, tmp_path)


def test_select_validation_scores(
    params: Params, split: dict[str, dict[str, Any]], served: bytes, tmp_path: Path
) -> None:
    X, y = split["train"]["X"][:300], split["train"]["y"][:300]
    scores = select.validation_scores(served, X, y, params)
    assert_writer_absorbs_ulps({"candidates": {"mlp": {"validation": scores}}}, tmp_path)


def test_train_model_metadata(
    params: Params, split: dict[str, dict[str, Any]], served: bytes, tmp_path: Path
) -> None:
    _, probabilities = onnx_predict(served, split["test"]["X"])
    reference = np.asarray(probabilities, dtype=np.float64) * (1 + 1e-9)
    diff = float(np.max(np.abs(reference - probabilities)))
    parity = Parity(len(reference), diff, 0, params.train.onnx_tolerance)

    class Fitted:
        classes_ = np.arange(10)

    metadata = model_metadata(Fitted(), "mlp", params, parity, n_train=len(split["train"]["y"]))
    assert_writer_absorbs_ulps(metadata, tmp_path)


def test_evaluate_metrics_and_importances(
    params: Params, split: dict[str, dict[str, Any]], served: bytes, tmp_path: Path
) -> None:
    X, y = split["test"]["X"], split["test"]["y"]
    labels, probabilities = onnx_predict(served, X)
    metrics = evaluate.classification_metrics(y, labels, probabilities, 10)
    evaluate.add_intervals(metrics, y, labels, params.evaluate.confidence_level)
    metrics["argmax_margin"] = evaluate.argmax_margin(probabilities)
    assert_writer_absorbs_ulps(metrics, tmp_path / "metrics")
    calibration = evaluate.calibration_table(y, probabilities, params.evaluate.calibration_bins)
    assert_writer_absorbs_ulps(calibration, tmp_path / "calibration")
    model = classifier.load_sklearn_model(require_artifact(REPO_ROOT / "models" / "model.joblib"))
    importance = evaluate.permutation_importances(model, X[:150], y[:150], 2, params.seed)
    assert_writer_absorbs_ulps(importance, tmp_path / "importance")


def test_ood_metadata(params: Params, split: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    detector = ood.fit_detector(split["train"]["X"], split["train"]["y"], params)
    metadata = ood.detector_metadata(detector, params.ood, len(split["train"]["y"]))
    # fit_detector rounds its own scales; the raw ratio below is what the writer meets.
    metadata["explained_variance_ratio"] = float(
        np.sum(np.asarray(detector.pca.explained_variance_ratio_, dtype=np.float64)) / 3.0
    )
    assert_writer_absorbs_ulps(metadata, tmp_path)


def test_ood_evaluate_report(
    params: Params, split: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    detector_bytes = read_bytes(require_artifact(REPO_ROOT / "models" / "ood.onnx"))
    score: Callable[[Any], Any] = lambda X: classifier.onnx_scores(detector_bytes, X)  # noqa: E731
    report = ood_evaluate.ood_report(
        split["test"]["X"], score, params.ood, params.seed, params.evaluate.confidence_level
    )
    assert_writer_absorbs_ulps(report, tmp_path)


def test_robustness_stress_report(
    params: Params, split: dict[str, dict[str, Any]], served: bytes, tmp_path: Path
) -> None:
    artifacts = robustness.served_artifacts(
        served, require_artifact(REPO_ROOT / "models" / "ood.onnx").read_bytes()
    )
    X, y = split["test"]["X"], split["test"]["y"]
    rob = params.robustness
    outcomes = stress.shift_outcomes(X, y, artifacts, rob.shift_pixels)
    blank_rows = params.ood.ink_cut_blank_rows
    report = {
        "stress": stress.stress_tests(X, y, artifacts, outcomes, rob, params.seed),
        "ink_cut_flag": stress.ink_cut_experiment(X, y, artifacts, rob, blank_rows, params.seed),
    }
    assert_writer_absorbs_ulps(report, tmp_path)
