"""The candidate estimators: one unfitted scikit-learn model per ``ModelType``.

Every candidate that needs scaled inputs is a ``Pipeline(scaler, classifier)``
so that it exports to ONNX as one graph taking raw pixels 0..16.
"""

from __future__ import annotations

from typing import Any

from stages.lib.params import ModelType, TrainParams


def build_model(model_type: ModelType, params: TrainParams, seed: int) -> Any:
    """An unfitted scikit-learn estimator of ``model_type`` with its params from ``train``."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if model_type == "logistic_regression":
        lr = params.logistic_regression
        return Pipeline(
            [
                ("scaler", StandardScaler()),
                (
                    "classifier",
                    LogisticRegression(C=lr.C, max_iter=lr.max_iter, tol=lr.tol, random_state=seed),
                ),
            ]
        )
    if model_type == "mlp":
        mlp = params.mlp
        return Pipeline(
            [
                ("scaler", StandardScaler()),
                (
                    "classifier",
                    MLPClassifier(
                        hidden_layer_sizes=mlp.hidden_layer_sizes,
                        alpha=mlp.alpha,
                        learning_rate_init=mlp.learning_rate_init,
                        max_iter=mlp.max_iter,
                        tol=mlp.tol,
                        random_state=seed,
                    ),
                ),
            ]
        )
    if model_type == "svc":
        return Pipeline(
            [
                ("scaler", StandardScaler()),
                (
                    "classifier",
                    # Platt-scaled probabilities (SVC(probability=True) is deprecated).
                    CalibratedClassifierCV(
                        SVC(C=params.svc.C, gamma=params.svc.gamma),
                        method="sigmoid",
                        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=seed),
                        ensemble=False,
                    ),
                ),
            ]
        )
    rf = params.random_forest
    return RandomForestClassifier(
        n_estimators=rf.n_estimators,
        max_depth=rf.max_depth,
        min_samples_leaf=rf.min_samples_leaf,
        random_state=seed,
        n_jobs=1,
    )
