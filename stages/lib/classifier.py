"""The classifier's artifacts, as every stage uses them: fit (canonical), ONNX export and
ONNX Runtime predictions, the joblib model, and the detector's ONNX scores."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.canonical import canonical_estimator
from stages.lib.models import build_model
from stages.lib.params import ModelType, TrainParams
from stages.lib.runner import StageError

ONNX_INPUT_NAME = "pixels"
ONNX_LABEL_OUTPUT = "label"
ONNX_PROBABILITY_OUTPUT = "probabilities"
# Pinned so the exported graph does not change with the installed converter's default.
ONNX_TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
MODEL_NAME = "digits-classifier"


OOD_SCORE_OUTPUT = "ood_score"
OOD_PCA_SCORE_OUTPUT = "ood_pca_score"  # the PCA part alone, without the ink-cut rule


def fit_model(
    model_type: ModelType, params: TrainParams, seed: int, X: npt.NDArray[Any], y: npt.NDArray[Any]
) -> Any:
    """Fit a ``model_type`` estimator, canonical (:func:`canonical_estimator`) from here on.

    Convergence warnings become errors. Every later use (evaluation, export, the saved
    joblib) sees the float32-rounded fit, so float64 summation noise of this machine's
    BLAS kernel reaches no output.
    """
    from sklearn.exceptions import ConvergenceWarning

    model = build_model(model_type, params, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            model.fit(X, y)
        except ConvergenceWarning as exc:
            raise StageError(f"training did not converge ({exc}); raise max_iter") from None
    return canonical_estimator(model)


def export_onnx(model: Any) -> bytes:
    """Serialise the fitted model to ONNX: float32 ``pixels`` in, label and probabilities out.

    An alignment step (:class:`stages.lib.align.CentroidAlign`) becomes the graph's first nodes.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    from stages.lib.align import register_converter

    register_converter()
    with warnings.catch_warnings():
        # skl2onnx reads SVC.probA_/probB_, which scikit-learn 1.9 marks deprecated.
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
        onnx_model = to_onnx(
            model,
            initial_types=[(ONNX_INPUT_NAME, FloatTensorType([None, 64]))],
            target_opset=ONNX_TARGET_OPSET,
            options={"zipmap": False},
        )
    # skl2onnx fills opset_import from a set, so its order follows the process's string
    # hash seed; sort it so the exported bytes do not.
    opsets = sorted((o.domain, o.version) for o in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    for domain, opset_version in opsets:
        onnx_model.opset_import.add(domain=domain, version=opset_version)
    onnx_model.doc_string = f"{MODEL_NAME}: 8x8 digits, pixels 0..16 as float32[N, 64]"
    serialised: bytes = onnx_model.SerializeToString(deterministic=True)
    return serialised


@functools.lru_cache(maxsize=8)
def onnx_session(onnx_bytes: bytes) -> Any:
    """One ONNX Runtime session per model (single thread, deterministic), reused across calls:
    attacks query a model thousands of times, and a session costs milliseconds to build."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def onnx_predict(
    onnx_bytes: bytes, X: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Labels and probabilities from ONNX Runtime (single thread, deterministic)."""
    session = onnx_session(onnx_bytes)
    labels, probabilities = session.run(
        [ONNX_LABEL_OUTPUT, ONNX_PROBABILITY_OUTPUT],
        {ONNX_INPUT_NAME: np.asarray(X, dtype=np.float32)},
    )
    return np.asarray(labels), np.asarray(probabilities)


def load_sklearn_model(path: Path) -> Any:
    """Load the pipeline's own joblib artifact (never done on the serving path)."""
    import joblib

    if not path.is_file():
        raise FileNotFoundError(f"{path}: required input is missing")
    return joblib.load(path)


def onnx_scores(
    onnx_bytes: bytes, X: npt.NDArray[Any], output: str = OOD_SCORE_OUTPUT
) -> npt.NDArray[Any]:
    """``ood_score`` (or another score ``output``) from ONNX Runtime (single thread)."""
    (scores,) = onnx_session(onnx_bytes).run([output], {ONNX_INPUT_NAME: np.asarray(X, np.float32)})
    return np.asarray(scores)
