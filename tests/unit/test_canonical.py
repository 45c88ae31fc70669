"""The canonical-number rule: output bytes do not move when values move by a few ulps."""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.artifacts import json_bytes, npz_bytes
from stages.lib.canonical import (
    REPORT_DECIMALS,
    ModelWeights,
    canonical_estimator,
    canonical_float,
    canonical_json,
    float32_array,
)
from stages.lib.models import build_model
from stages.lib.params import ModelType, load_params
from tests.conftest import REPO_ROOT
from tests.ulps import perturb, perturb_estimator

SEED = 20261204


def raw_floats(n: int) -> list[float]:
    """Floats as stages compute them: many magnitudes, both signs, residue around 0."""
    rng = np.random.default_rng(SEED)
    magnitudes = 10.0 ** rng.uniform(-11, 4, size=n)
    values = (magnitudes * rng.choice([-1.0, 1.0], size=n)).tolist()
    return [*values, 1e-17, -3e-18, 0.0, -0.0, 0.9777777777777777, 367.9162239844667]


@pytest.mark.parametrize("ulps", [1, -1, 3, -4])
def test_json_bytes_absorb_a_few_ulps(ulps: int) -> None:
    payload = {"values": raw_floats(5000), "nested": {"mean": [0.1 + 0.2, 2.0 / 3.0]}}
    assert json_bytes(perturb(payload, ulps)) == json_bytes(payload)


def test_json_bytes_round_what_plain_json_keeps() -> None:
    """Not vacuous: the raw values would not survive as they are."""
    payload = {"values": raw_floats(100)}
    plain = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    assert json_bytes(payload) != plain.encode()
    assert json.loads(json_bytes(payload)) == canonical_json(payload)


def test_report_precision() -> None:
    assert canonical_float(0.9777777777777777) == 0.977778
    assert canonical_float(367.9162239844667) == 367.916
    assert canonical_float(1.3567011875048608e-09) == 1.357e-09  # absolute noise floor
    assert canonical_float(-1e-17) == 0.0
    assert json.dumps(canonical_float(-1e-17)) == "0.0"  # no "-0.0"
    assert canonical_float(10.0 ** -(REPORT_DECIMALS + 1)) == 0.0
    assert canonical_float(float("inf")) == float("inf")
    assert canonical_json({"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True)}) == {
        "n": 3,
        "x": 0.5,
        "ok": True,
    }


def test_canonical_json_refuses_what_it_cannot_write() -> None:
    with pytest.raises(TypeError, match="set"):
        canonical_json({"bad": {1, 2}})


@pytest.mark.parametrize("ulps", [1, -2, 4])
def test_npz_bytes_absorb_a_few_ulps(ulps: int) -> None:
    rng = np.random.default_rng(SEED)
    arrays = {"X": rng.normal(size=(200, 64)), "y": np.arange(200)}
    noisy = {"X": perturb(arrays["X"], ulps), "y": arrays["y"]}
    assert npz_bytes(noisy) == npz_bytes(arrays)


def test_float32_array_flushes_residue_and_negative_zero() -> None:
    values = np.array([1.0, 1e-17, -1e-17, -0.0, 1e-7, 0.1], dtype=np.float64)
    rounded = float32_array(values)
    assert rounded.dtype == np.float64
    assert rounded.tolist() == [1.0, 0.0, 0.0, 0.0, float(np.float32(1e-7)), float(np.float32(0.1))]
    assert not np.signbit(rounded).any()
    ints = np.arange(4)
    assert float32_array(ints) is ints


def _fitted(model_type: ModelType) -> Any:
    """A quickly fitted candidate of ``model_type`` (raw, not yet canonical)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    train = load_params(REPO_ROOT / "params.yaml").train
    model = build_model(model_type, train, 42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short fit: convergence is not the point here
        if model_type == "mlp":
            model.set_params(classifier__max_iter=20)
        model.fit(X[:600], y[:600])
    return model


def _joblib(model: Any) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=0)
    return buffer.getvalue()


@pytest.mark.parametrize("model_type", ["logistic_regression", "mlp", "svc", "random_forest"])
def test_a_canonical_fit_does_not_move_with_ulp_noise_in_its_weights(
    model_type: ModelType,
) -> None:
    """What train saves and exports is the same whether the fit's floats moved a few ulps."""
    from stages.lib.classifier import export_onnx

    model = _fitted(model_type)
    noisy = perturb_estimator(_fitted(model_type), ulps=3)
    assert model_type == "random_forest" or _joblib(noisy) != _joblib(model)
    canonical_estimator(model)
    canonical_estimator(noisy)
    assert _joblib(noisy) == _joblib(model)
    assert export_onnx(noisy) == export_onnx(model)


def test_canonical_estimator_keeps_hyperparameters_and_drops_optimiser_state() -> None:
    model = _fitted("mlp")
    classifier = model.named_steps["classifier"]
    assert hasattr(classifier, "_optimizer")
    alpha, learning_rate = classifier.alpha, classifier.learning_rate_init
    canonical_estimator(model)
    assert not hasattr(classifier, "_optimizer")
    assert (classifier.alpha, classifier.learning_rate_init) == (alpha, learning_rate)
    for weights in classifier.coefs_:
        weights_32: npt.NDArray[Any] = weights.astype(np.float32)
        assert np.array_equal(weights, weights_32)
    with pytest.raises(TypeError, match="not a scikit-learn estimator"):
        canonical_estimator(object())


def test_model_weights_are_written_exactly_and_only_when_canonical() -> None:
    """Weights the service computes with keep every float32 digit; raw fits are refused."""
    weights = np.array([0.1, -2.5e-7, 3.0]).astype(np.float32).astype(np.float64)
    written = json.loads(json_bytes({"coef": ModelWeights(weights)}))["coef"]
    assert written == weights.tolist()  # not 6 significant digits: exact
    with pytest.raises(ValueError, match="canonical"):
        ModelWeights(np.array([0.1]))
