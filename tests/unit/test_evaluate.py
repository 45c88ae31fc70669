"""evaluate: metric maths, calibration error and the quality gate."""

from __future__ import annotations

import numpy as np
import pytest

from stages.evaluate import (
    add_intervals,
    calibration_table,
    classification_metrics,
    confusion_rows,
    expected_calibration_error,
    per_class_table,
    quality_gates,
)
from stages.lib.gates import GateError, enforce
from stages.lib.params import EvaluateGates, EvaluateParams, Gate

pytestmark = pytest.mark.unit


def _one_hot(labels: list[int], confidence: float) -> np.ndarray:
    probabilities = np.full((len(labels), 10), (1 - confidence) / 9)
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


def test_ece_is_zero_when_confidence_equals_accuracy() -> None:
    y_true = np.array([0, 1, 2, 3])
    # Predict class 0 for all with confidence 0.25: accuracy 0.25 in that bin.
    probabilities = np.full((4, 10), 0.75 / 9)
    probabilities[:, 0] = 0.25
    assert expected_calibration_error(y_true, probabilities, 10) == pytest.approx(0.0)


def test_ece_measures_overconfidence() -> None:
    y_true = np.array([0, 0, 0, 0])
    probabilities = _one_hot([0, 0, 1, 1], confidence=0.95)
    # One bin (0.9..1.0]: confidence 0.95, accuracy 0.5.
    assert expected_calibration_error(y_true, probabilities, 10) == pytest.approx(0.45)


def test_calibration_table_holds_the_ece_bins() -> None:
    """The reliability diagram's bins: their weighted gaps add up to the ECE."""
    y_true = np.array([0, 0, 0, 0, 1])
    probabilities = _one_hot([0, 0, 1, 1, 1], confidence=0.95)
    probabilities[4] = 0.1
    probabilities[4, 1] = 0.15  # confidence 0.15 -> bin (0.1, 0.2], correct
    table = calibration_table(y_true, probabilities, 10)
    assert [row["n"] for row in table] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 4]
    assert table[0]["mean_confidence"] is None
    assert table[0]["accuracy"] is None
    assert table[1]["accuracy"] == 1.0
    assert table[9]["low"] == pytest.approx(0.9)
    assert table[9]["high"] == 1.0
    assert table[9]["mean_confidence"] == pytest.approx(0.95)
    assert table[9]["accuracy"] == 0.5
    gaps = sum(
        row["n"] / 5 * abs(row["accuracy"] - row["mean_confidence"]) for row in table if row["n"]
    )
    assert gaps == pytest.approx(expected_calibration_error(y_true, probabilities, 10))


def test_classification_metrics() -> None:
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 1, 2, 1])
    probabilities = _one_hot(list(y_pred), confidence=0.9)
    metrics = classification_metrics(y_true, y_pred, probabilities, calibration_bins=10)
    assert metrics["accuracy"] == 0.75
    assert metrics["per_class"]["2"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert metrics["per_class"]["1"]["precision"] == 0.5
    assert metrics["per_class"]["5"]["support"] == 0
    expected_log_loss = -np.mean(np.log([0.9, 0.9, 0.9, 0.1 / 9]))
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)
    add_intervals(metrics, y_true, y_pred, level=0.95)
    # Wilson 95 % interval of 1 success in 2 trials, by the closed form.
    assert metrics["per_class"]["2"]["recall_ci95"] == pytest.approx([0.0945, 0.9055], abs=1e-4)
    assert metrics["accuracy_ci95"][0] < 0.75 < metrics["accuracy_ci95"][1]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in per_class_table(metrics).splitlines()
    ]
    assert rows[0] == ["class", "precision", "recall", "recall 95 % CI", "f1", "support"]
    assert ["2", "1.0000", "0.5000", "0.0945 to 0.9055", "0.6667", "2"] in rows


def test_confusion_rows() -> None:
    assert confusion_rows(np.array([1, 2]), np.array([1, 3])) == [
        {"actual": 1, "predicted": 1},
        {"actual": 2, "predicted": 3},
    ]


RATIONALE = "Clients need most clean digits read correctly."


def _params(threshold: float) -> EvaluateParams:
    return EvaluateParams(
        gates=EvaluateGates(clean_accuracy=Gate(threshold=threshold, rationale=RATIONALE))
    )


def test_quality_gate_verdicts_carry_interval_and_rationale() -> None:
    metrics = {"accuracy": 0.96, "accuracy_ci95": [0.94, 0.975]}
    passing = quality_gates(metrics, _params(0.95))["clean_accuracy"]
    assert passing["passed"] is True
    assert passing["marginal"] is True  # 0.94 < 0.95 < 0.975
    assert passing["ci95"] == [0.94, 0.975]
    assert passing["rationale"] == RATIONALE
    clear = quality_gates(metrics, _params(0.9))["clean_accuracy"]
    assert (clear["passed"], clear["marginal"]) == (True, False)
    failing = quality_gates(metrics, _params(0.98))
    assert failing["clean_accuracy"]["passed"] is False
    with pytest.raises(GateError) as excinfo:
        enforce("evaluate.gates", failing)
    assert str(excinfo.value) == (
        "gate evaluate.gates.clean_accuracy failed: accuracy on the clean test split = 0.9600, "
        f"needs >= 0.98 ({RATIONALE})"
    )
