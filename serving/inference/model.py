"""ONNX Runtime inference and per-pixel explanations for the verified model."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from serving.lineage import LineageError, LinearExplanation, VerifiedBundle

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
N_FEATURES = 64
OCCLUSION_BASELINE = 0.0


def _session(data: bytes, name: str) -> ort.InferenceSession:
    """A single-threaded, sequential ONNX Runtime session, or ``artifact_invalid``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise LineageError("artifact_invalid", f"{name} cannot be loaded: {exc}") from None


class OodDetector:
    """The hash-locked out-of-distribution detector: ``ood_score`` per row, > 1 is flagged."""

    def __init__(self, bundle: VerifiedBundle) -> None:
        self._session = _session(bundle.ood_bytes, "ood.onnx")
        card = bundle.ood_card
        self._input, self._output = card.onnx.input, card.onnx.output
        self.flag_above = card.flag_above
        names = {output.name for output in self._session.get_outputs()}
        if self._output not in names:
            raise LineageError("artifact_invalid", f"ood.onnx outputs {sorted(names)}")

    def scores(self, X: FloatArray) -> FloatArray:
        """``ood_score`` per row (float32)."""
        (scores,) = self._session.run([self._output], {self._input: X})
        return np.asarray(scores, dtype=np.float32).reshape(len(X))

    def flags(self, scores: FloatArray) -> npt.NDArray[np.bool_]:
        """Which rows are out of distribution."""
        return np.asarray(scores > self.flag_above)


class OnnxModel:
    """A single-threaded ONNX Runtime session over the verified model bytes."""

    def __init__(self, bundle: VerifiedBundle) -> None:
        self._session = _session(bundle.onnx_bytes, "model.onnx")
        self.ood = OodDetector(bundle)
        onnx = bundle.card.onnx
        self._input = onnx.input
        self._outputs = ["label", "probabilities"]
        names = {output.name for output in self._session.get_outputs()}
        if not set(self._outputs) <= names:
            raise LineageError("artifact_invalid", f"model.onnx outputs {sorted(names)}")
        self.classes = np.asarray(bundle.card.classes, dtype=np.int64)
        self.linear = _linear_arrays(bundle.card.linear_explanation)

    def predict(self, X: FloatArray) -> tuple[IntArray, FloatArray]:
        """Predicted labels ``[n]`` and class probabilities ``[n, n_classes]``."""
        labels, probabilities = self._session.run(self._outputs, {self._input: X})
        return np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float32)

    def predict_rows(self, X: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
        """Labels, probabilities and ``ood_score`` per row: everything a served row carries."""
        labels, probabilities = self.predict(X)
        return labels, probabilities, self.ood.scores(X)

    def warm_up(self) -> None:
        """Run one inference so the first request does not pay for lazy initialisation."""
        labels, probabilities, scores = self.predict_rows(
            np.zeros((2, N_FEATURES), dtype=np.float32)
        )
        if labels.shape != (2,) or probabilities.shape != (2, len(self.classes)):
            raise LineageError(
                "artifact_invalid",
                f"model.onnx returned shapes {labels.shape}, {probabilities.shape}",
            )
        if scores.shape != (2,) or not np.all(np.isfinite(scores)):
            raise LineageError("artifact_invalid", f"ood.onnx returned {scores!r}")

    @property
    def explanation_method(self) -> str:
        return "linear_exact" if self.linear is not None else "occlusion"

    def explain(self, X: FloatArray, labels: IntArray) -> tuple[FloatArray, FloatArray]:
        """Per-pixel contributions ``[n, 64]`` to each sample's predicted class, and base values.

        Linear models: exact logit contributions ``coef[c, j] * (x_j - mean_j) / scale_j``
        whose sum plus ``intercept[c]`` (the base value) is the class logit.
        Other models: occlusion, the drop in the predicted class probability when
        pixel ``j`` is set to 0 (blank); the base value is the unoccluded probability.
        """
        class_index = np.searchsorted(self.classes, labels)
        if self.linear is not None:
            return linear_contributions(self.linear, X, class_index)
        return self._occlusion(X, class_index)

    def _occlusion(self, X: FloatArray, class_index: IntArray) -> tuple[FloatArray, FloatArray]:
        n = X.shape[0]
        _, base = self.predict(X)
        base_p = base[np.arange(n), class_index]
        occluded = np.repeat(X, N_FEATURES, axis=0).reshape(n, N_FEATURES, N_FEATURES)
        idx = np.arange(N_FEATURES)
        occluded[:, idx, idx] = OCCLUSION_BASELINE
        _, probs = self.predict(occluded.reshape(n * N_FEATURES, N_FEATURES))
        occluded_p = probs.reshape(n, N_FEATURES, -1)[np.arange(n), :, class_index]
        return (base_p[:, None] - occluded_p).astype(np.float32), base_p.astype(np.float32)


class LinearArrays:
    """``linear_explanation`` as numpy arrays."""

    def __init__(self, spec: LinearExplanation) -> None:
        self.coef = np.asarray(spec.coef, dtype=np.float64)
        self.intercept = np.asarray(spec.intercept, dtype=np.float64)
        self.mean = np.asarray(spec.scaler_mean, dtype=np.float64)
        self.scale = np.asarray(spec.scaler_scale, dtype=np.float64)
        if self.coef.shape[1:] != (N_FEATURES,) or self.mean.shape != (N_FEATURES,):
            raise LineageError("artifact_invalid", "model.json linear_explanation has bad shapes")


def _linear_arrays(spec: LinearExplanation | None) -> LinearArrays | None:
    return None if spec is None else LinearArrays(spec)


def linear_contributions(
    linear: LinearArrays, X: FloatArray, class_index: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Exact per-feature logit contributions for each sample's class, and the intercepts."""
    standardised = (X.astype(np.float64) - linear.mean) / linear.scale
    contributions = linear.coef[class_index] * standardised
    return contributions.astype(np.float32), linear.intercept[class_index].astype(np.float32)
