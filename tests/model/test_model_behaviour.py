"""Behaviour of the trained, exported model (models/model.onnx) on held-out digits."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.artifacts import read_json
from stages.lib.augment import copies_per_image
from stages.lib.classifier import onnx_predict
from stages.lib.params import load_params, to_builtins
from stages.train import PARITY_SHIFTS
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.model

Split = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]
MIN_RECALL_PER_CLASS = 0.90


def test_accuracy_meets_the_quality_gate(onnx_bytes: bytes, test_split: Split) -> None:
    X, y = test_split
    labels, _ = onnx_predict(onnx_bytes, X)
    gate = load_params(REPO_ROOT / "params.yaml").evaluate.gates.clean_accuracy
    assert float(np.mean(labels == y)) >= gate.threshold


def test_every_class_is_recalled(onnx_bytes: bytes, test_split: Split) -> None:
    X, y = test_split
    labels, _ = onnx_predict(onnx_bytes, X)
    for digit in range(10):
        recall = float(np.mean(labels[y == digit] == digit))
        assert recall >= MIN_RECALL_PER_CLASS, f"recall of {digit} is {recall:.3f}"


def test_probabilities_are_a_distribution(onnx_bytes: bytes, test_split: Split) -> None:
    X, _ = test_split
    labels, probabilities = onnx_predict(onnx_bytes, X)
    assert probabilities.shape == (len(X), 10)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels, probabilities.argmax(axis=1))


def test_invariant_to_tiny_noise_on_clean_digits(onnx_bytes: bytes, test_split: Split) -> None:
    X, _ = test_split
    labels, probabilities = onnx_predict(onnx_bytes, X)
    confident = probabilities.max(axis=1) >= 0.9
    rng = np.random.default_rng(0)
    noisy = np.clip(X + rng.normal(0.0, 0.05, size=X.shape), 0.0, 16.0)
    noisy_labels, _ = onnx_predict(onnx_bytes, noisy)
    assert np.array_equal(noisy_labels[confident], labels[confident])


def test_prediction_does_not_depend_on_batch_composition(
    onnx_bytes: bytes, test_split: Split
) -> None:
    X, _ = test_split
    _, batch = onnx_predict(onnx_bytes, X[:32])
    single = np.vstack([onnx_predict(onnx_bytes, X[i : i + 1])[1] for i in range(32)])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_metadata_matches_the_artifact(model_metadata: dict[str, Any], test_split: Split) -> None:
    assert model_metadata["classes"] == list(range(10))
    assert model_metadata["n_features"] == 64
    assert model_metadata["parity"]["argmax_mismatches"] == 0
    assert model_metadata["parity"]["max_abs_probability_diff"] <= 1e-5
    # The test split, then its copies shifted 1 and 2 pixels in each of the 8 directions.
    assert model_metadata["parity"]["n_samples"] == (1 + 8 * len(PARITY_SHIFTS)) * len(
        test_split[1]
    )
    params = load_params(REPO_ROOT / "params.yaml")
    assert model_metadata["alignment"]["method"] == params.train.alignment
    selection = read_json(REPO_ROOT / "reports" / "model_selection.json")
    assert model_metadata["model_type"] == selection["winner"]
    assert model_metadata["model_type"] in params.train.selection.candidates
    # The train stage depends on seed and train.* (dvc.yaml): those must be what it recorded.
    assert model_metadata["params"]["seed"] == params.seed
    recorded = json.loads(json.dumps(to_builtins(params)))  # tuples as JSON lists
    assert model_metadata["params"]["train"] == recorded["train"]
    rows_per_image = copies_per_image(params.train.augment)
    assert model_metadata["augmentation"]["rows_per_image"] == rows_per_image
    assert (
        model_metadata["augmentation"]["n_train_rows"] == rows_per_image * model_metadata["n_train"]
    )
