"""The candidate estimators: one unfitted scikit-learn model per ``ModelType``.

Every candidate is one ``Pipeline`` that exports to ONNX as one graph taking raw pixels
0..16: the centroid alignment first (``train.alignment: centroid``, :mod:`stages.lib.align`),
then the scaler where the classifier needs scaled inputs, then the classifier.
"""

from __future__ import annotations

from typing import Any

from stages.lib.params import ModelType, TrainParams


def build_model(model_type: ModelType, params: TrainParams, seed: int) -> Any:
    """An unfitted scikit-learn estimator of ``model_type`` with its params from ``train``,
    behind the alignment step when ``params.alignment`` asks for one."""
    from sklearn.pipeline import Pipeline

    from stages.lib.align import CentroidAlign

    model = _classifier(model_type, params, seed)
    if params.alignment == "none":
        return model
    steps = model.steps if isinstance(model, Pipeline) else [("classifier", model)]
    return Pipeline([("align", CentroidAlign()), *steps])


def _classifier(model_type: ModelType, params: TrainParams, seed: int) -> Any:
    """The unaligned estimator of ``model_type``."""
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
