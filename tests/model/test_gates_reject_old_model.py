"""The requirement-derived gates reject the old model and accept the selected one.

The old configuration is a plain (scaled) logistic regression on raw pixels,
trained without augmentation on the same split. Its gate verdicts are computed
with the stages' own functions, with the gates in ``params.yaml``; the selected
model's verdicts are the committed reports.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.evaluate import add_intervals, classification_metrics, quality_gates
from stages.lib.artifacts import read_json, read_npz
from stages.lib.classifier import export_onnx, fit_model, onnx_predict
from stages.lib.params import Params, load_params, parse_params, to_builtins
from stages.robustness import robustness_report
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore:PyTorch not found:UserWarning")]


def old_params() -> Params:
    """``params.yaml`` with augmentation off and logistic regression the only candidate."""
    raw = json.loads(json.dumps(to_builtins(load_params(REPO_ROOT / "params.yaml"))))
    raw["train"]["augment"]["enabled"] = False
    raw["train"]["selection"]["candidates"] = ["logistic_regression"]
    return parse_params(json.dumps(raw))


def _no_surrogate() -> Any:
    pytest.fail("logistic regression has ART gradients: no surrogate is needed")


def old_model_verdicts() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], bytes]:
    """Evaluate and robustness gate verdicts of the old configuration, and its ONNX model."""
    params = old_params()
    train = read_npz(REPO_ROOT / "data" / "prepared" / "train.npz", ("X", "y"))
    test = read_npz(REPO_ROOT / "data" / "prepared" / "test.npz", ("X", "y"))
    model = fit_model("logistic_regression", params.train, params.seed, train["X"], train["y"])
    onnx_bytes = export_onnx(model)

    def predict(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_predict(onnx_bytes, batch)[0]

    def predict_proba(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_predict(onnx_bytes, batch)[1]

    labels, probabilities = onnx_predict(onnx_bytes, test["X"])
    metrics = classification_metrics(
        test["y"], labels, probabilities, params.evaluate.calibration_bins
    )
    add_intervals(metrics, test["y"], labels, params.evaluate.confidence_level)
    evaluate = quality_gates(metrics, params.evaluate)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
        report = robustness_report(
            model, _no_surrogate, test["X"], test["y"], predict, predict_proba, params
        )
    return evaluate, report["gates"], onnx_bytes


def test_old_logistic_regression_fails_the_gates() -> None:
    evaluate, robustness, onnx_bytes = old_model_verdicts()
    params = load_params(REPO_ROOT / "params.yaml")
    gates = params.robustness.gates

    # The old model reads clean digits well enough ...
    assert evaluate["clean_accuracy"]["value"] > 0.95
    # ... but a one-pixel shift and sigma=2 noise break it: the gates say no.
    for name in ("shift_mean", "shift_worst_direction", "noise"):
        record = robustness[name]
        assert record["passed"] is False, (name, record)
        assert record["threshold"] == getattr(gates, name).threshold
        assert record["rationale"] == getattr(gates, name).rationale
    # Far below, not marginally: the whole 95 % interval lies under each threshold.
    for name in ("shift_mean", "shift_worst_direction", "noise"):
        assert robustness[name]["ci95"][1] < robustness[name]["threshold"], name
    assert robustness["shift_mean"]["value"] < 0.5
    # And it is certain about a blank square, which is not a digit.
    _, blank = onnx_predict(onnx_bytes, np.zeros((1, 64)))
    assert float(blank.max()) > 0.99

    # The committed reports of the selected model pass every one of these gates.
    metrics = read_json(REPO_ROOT / "reports" / "metrics.json")
    selected_robustness = read_json(REPO_ROOT / "reports" / "robustness.json")
    ood = read_json(REPO_ROOT / "reports" / "ood.json")
    committed = {
        "evaluate": metrics["gates"],
        "robustness": selected_robustness["gates"],
        "ood": ood["gates"],
    }
    assert set(committed["evaluate"]) == set(evaluate)
    assert set(committed["robustness"]) == set(robustness)
    assert set(committed["ood"]) == {"max_false_positive_rate", "min_detection_rate"}
    for section, verdicts in committed.items():
        for name, record in verdicts.items():
            assert record["passed"] is True, f"{section}.{name}: {record}"
    assert metrics["passed"] is True
    assert selected_robustness["passed"] is True
    assert ood["passed"] is True
    # The committed verdicts were made against the gates in force.
    for name in ("shift_mean", "shift_worst_direction", "noise", "adversarial"):
        assert committed["robustness"][name]["threshold"] == getattr(gates, name).threshold
    assert committed["evaluate"]["clean_accuracy"]["threshold"] == (
        params.evaluate.gates.clean_accuracy.threshold
    )
    ood_gates = params.ood.gates
    assert committed["ood"]["max_false_positive_rate"]["threshold"] == (
        ood_gates.max_false_positive_rate.threshold
    )
    assert committed["ood"]["min_detection_rate"]["threshold"] == (
        ood_gates.min_detection_rate.threshold
    )
    # The blank square the old model was certain about is flagged by the detector.
    assert ood["detection"]["blank"]["rate"] == 1.0
