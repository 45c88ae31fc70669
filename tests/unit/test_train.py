"""train: every model type fits, exports to ONNX and matches scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest

from stages.data_prep import load_builtin_digits, split_dataset
from stages.params import TrainParams, parse_params
from stages.train import (
    ONNX_INPUT_NAME,
    export_onnx,
    fit_model,
    linear_explanation,
    measure_parity,
    model_metadata,
    onnx_predict,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def split() -> Any:
    return split_dataset(load_builtin_digits(), test_size=0.25, seed=42)


@pytest.fixture(scope="module", params=["logistic_regression", "svc", "random_forest"])
def fitted(request: pytest.FixtureRequest, split: Any) -> tuple[str, Any, bytes]:
    params = TrainParams(model=request.param)
    model = fit_model(params, 42, split.train.X, split.train.y)
    return request.param, model, export_onnx(model)


def test_onnx_matches_sklearn_within_tolerance(fitted: tuple[str, Any, bytes], split: Any) -> None:
    _, model, onnx_bytes = fitted
    parity = measure_parity(model, onnx_bytes, split.test.X, tolerance=1e-5)
    assert parity.ok, parity
    assert parity.max_abs_probability_diff < 1e-5
    assert parity.argmax_mismatches == 0


def test_parity_check_fails_when_tolerance_is_impossible(
    fitted: tuple[str, Any, bytes], split: Any
) -> None:
    _, model, onnx_bytes = fitted
    # float32 ONNX never reproduces float64 scikit-learn bit for bit.
    parity = measure_parity(model, onnx_bytes, split.test.X, tolerance=0.0)
    assert parity.max_abs_probability_diff > 0
    assert not parity.ok


def test_onnx_graph_has_the_served_interface(fitted: tuple[str, Any, bytes]) -> None:
    _, _, onnx_bytes = fitted
    graph = onnx.load_from_string(onnx_bytes).graph
    assert [i.name for i in graph.input] == [ONNX_INPUT_NAME]
    elem_type = graph.input[0].type.tensor_type.elem_type
    assert elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in graph.output] == ["label", "probabilities"]


def test_export_is_deterministic(fitted: tuple[str, Any, bytes]) -> None:
    _, model, onnx_bytes = fitted
    assert export_onnx(model) == onnx_bytes


def test_training_is_seeded(split: Any) -> None:
    params = TrainParams(model="random_forest")
    first = fit_model(params, 1, split.train.X, split.train.y)
    again = fit_model(params, 1, split.train.X, split.train.y)
    np.testing.assert_array_equal(
        first.predict_proba(split.test.X), again.predict_proba(split.test.X)
    )


def test_default_model_is_accurate(fitted: tuple[str, Any, bytes], split: Any) -> None:
    _, _, onnx_bytes = fitted
    labels, probabilities = onnx_predict(onnx_bytes, split.test.X)
    assert float(np.mean(labels == split.test.y)) >= 0.95
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_linear_explanation_reproduces_logits(fitted: tuple[str, Any, bytes], split: Any) -> None:
    name, model, _ = fitted
    explanation = linear_explanation(model)
    if name != "logistic_regression":
        assert explanation is None
        return
    assert explanation is not None
    coef = np.asarray(explanation["coef"])
    scaled = (split.test.X - explanation["scaler_mean"]) / explanation["scaler_scale"]
    logits = scaled @ coef.T + explanation["intercept"]
    np.testing.assert_allclose(logits, model.decision_function(split.test.X), rtol=1e-9)


def test_metadata_records_lineage(fitted: tuple[str, Any, bytes], split: Any) -> None:
    name, model, onnx_bytes = fitted
    params = parse_params(f"train: {{model: {name}}}")
    parity = measure_parity(model, onnx_bytes, split.test.X, tolerance=1e-5)
    metadata = model_metadata(model, params, parity, n_train=len(split.train.y))
    assert metadata["model_type"] == name
    assert metadata["classes"] == list(range(10))
    assert metadata["params"]["train"]["model"] == name
    assert set(metadata["library_versions"]) >= {"scikit-learn", "onnxruntime", "skl2onnx"}
    assert metadata["parity"]["argmax_mismatches"] == 0
