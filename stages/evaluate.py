"""evaluate: score the exported ONNX model on the held-out split and apply the quality gate.

Metrics are computed from ONNX Runtime's outputs, i.e. from the artifact the
service serves. Global permutation importances (for ``/explain``) come from
the scikit-learn model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.artifacts import atomic_write_bytes, read_bytes, read_npz, write_json
from stages.lib.classifier import load_sklearn_model, onnx_predict
from stages.lib.gates import accuracy_interval, enforce, verdict
from stages.lib.params import EvaluateParams, load_params
from stages.lib.runner import run_stage

N_CLASSES = 10


def expected_calibration_error(
    y_true: npt.NDArray[Any], probabilities: npt.NDArray[Any], n_bins: int
) -> float:
    """Top-label ECE over ``n_bins`` equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bin_index == b
        if np.any(in_bin):
            ece += float(in_bin.mean()) * abs(
                float(correct[in_bin].mean()) - float(confidence[in_bin].mean())
            )
    return ece


def calibration_table(
    y_true: npt.NDArray[Any], probabilities: npt.NDArray[Any], n_bins: int
) -> list[dict[str, Any]]:
    """The reliability diagram's data: per equal-width confidence bin (the bins of
    :func:`expected_calibration_error`), its rows, mean top-label confidence and accuracy
    (``None`` for an empty bin)."""
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = (probabilities.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        in_bin = bin_index == b
        filled = bool(np.any(in_bin))
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": int(in_bin.sum()),
                "mean_confidence": float(confidence[in_bin].mean()) if filled else None,
                "accuracy": float(correct[in_bin].mean()) if filled else None,
            }
        )
    return rows


def classification_metrics(
    y_true: npt.NDArray[Any],
    y_pred: npt.NDArray[Any],
    probabilities: npt.NDArray[Any],
    calibration_bins: int,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1, log loss and ECE."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
    )

    labels = list(range(N_CLASSES))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        str(label): {
            "precision": float(precision[label]),
            "recall": float(recall[label]),
            "f1": float(f1[label]),
            "support": int(support[label]),
        }
        for label in labels
    }
    clipped = np.clip(probabilities.astype(np.float64), 1e-15, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return {
        "n_test": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "log_loss": float(log_loss(y_true, clipped, labels=labels)),
        "ece": expected_calibration_error(y_true, probabilities, calibration_bins),
        "per_class": per_class,
    }


def argmax_margin(probabilities: npt.NDArray[Any]) -> dict[str, Any]:
    """How far the closest prediction is from an argmax tie (top-1 minus top-2 probability).

    Two machines can only disagree on a label where this gap is within their float noise
    (float32: about 1e-7); the evaluation protocol quotes it.
    """
    top2 = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    return {
        "min_top2_probability_gap": float(gap.min()),
        "rows_with_gap_below_1e-4": int(np.sum(gap < 1e-4)),
        "n_rows": len(gap),
    }


def confusion_rows(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> list[dict[str, int]]:
    """One ``{actual, predicted}`` row per test sample, for DVC's confusion template."""
    return [{"actual": int(a), "predicted": int(p)} for a, p in zip(y_true, y_pred, strict=True)]


def per_class_table(metrics: dict[str, Any]) -> str:
    """A Markdown table of per-class metrics."""
    from tabulate import tabulate

    rows = [
        [
            label,
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            "{:.4f} to {:.4f}".format(*row["recall_ci95"]),
            f"{row['f1']:.4f}",
            row["support"],
        ]
        for label, row in metrics["per_class"].items()
    ]
    headers = ["class", "precision", "recall", "recall 95 % CI", "f1", "support"]
    table: str = tabulate(
        rows, headers, tablefmt="github", disable_numparse=True, colalign=("right",) * len(headers)
    )
    return table + "\n"


def permutation_importances(
    model: Any, X: npt.NDArray[Any], y: npt.NDArray[Any], repeats: int, seed: int
) -> dict[str, Any]:
    """Global per-pixel importance: mean drop in log-likelihood when a pixel is shuffled."""
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model, X, y, scoring="neg_log_loss", n_repeats=repeats, random_state=seed, n_jobs=1
    )
    return {
        "method": "permutation_importance",
        "scoring": "neg_log_loss",
        "n_repeats": repeats,
        "dataset": "test split",
        "importances_mean": [float(v) for v in result.importances_mean],
        "importances_std": [float(v) for v in result.importances_std],
    }


def add_intervals(
    metrics: dict[str, Any], y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any], level: float
) -> None:
    """Wilson intervals for the accuracy and every per-class recall, in place."""
    correct = y_pred == y_true
    metrics["accuracy_ci95"] = list(accuracy_interval(correct, level))
    for label, row in metrics["per_class"].items():
        row["recall_ci95"] = list(accuracy_interval(correct[y_true == int(label)], level))


def quality_gates(metrics: dict[str, Any], params: EvaluateParams) -> dict[str, dict[str, Any]]:
    """The evaluate stage's gate verdicts."""
    gate = params.gates.clean_accuracy
    low, high = metrics["accuracy_ci95"]
    return {
        "clean_accuracy": verdict(
            description="accuracy on the clean test split",
            value=metrics["accuracy"],
            threshold=gate.threshold,
            rationale=gate.rationale,
            interval=(low, high),
        )
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.evaluate --params P --data-dir D --model-dir M ...``."""
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--confusion", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--per-class-table", type=Path, required=True)
    parser.add_argument("--importance", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        test = read_npz(args.data_dir / "test.npz", ("X", "y"))
        onnx_bytes = read_bytes(args.model_dir / "model.onnx")
        labels, probabilities = onnx_predict(onnx_bytes, test["X"])
        metrics = classification_metrics(
            test["y"], labels, probabilities, params.evaluate.calibration_bins
        )
        add_intervals(metrics, test["y"], labels, params.evaluate.confidence_level)
        metrics["argmax_margin"] = argmax_margin(probabilities)
        metrics["gates"] = quality_gates(metrics, params.evaluate)
        metrics["passed"] = all(g["passed"] for g in metrics["gates"].values())
        model = load_sklearn_model(args.model_dir / "model.joblib")
        importance = permutation_importances(
            model, test["X"], test["y"], params.evaluate.permutation_repeats, params.seed
        )
        write_json(args.metrics, metrics)
        write_json(args.confusion, confusion_rows(test["y"], labels))
        write_json(
            args.calibration,
            calibration_table(test["y"], probabilities, params.evaluate.calibration_bins),
        )
        atomic_write_bytes(args.per_class_table, per_class_table(metrics).encode("utf-8"))
        write_json(args.importance, importance)
        print(
            f"evaluate: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
            f"log loss {metrics['log_loss']:.4f}, ECE {metrics['ece']:.4f}"
        )
        enforce("evaluate.gates", metrics["gates"])

    return run_stage("evaluate", body)


if __name__ == "__main__":
    sys.exit(main())
