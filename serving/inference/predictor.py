"""The predictor: everything between a decoded batch and what a request decided.

One object per worker owns the verified model's ONNX Runtime sessions (classifier and
out-of-distribution detector), the micro-batcher that stacks concurrent requests into one
model call, the OOD policy, the drift window and the model metrics (rows, predicted
classes, flagged rows). Every protocol adapter (``/predict``, ``/explain``, both OIP infer
routes) calls :meth:`Predictor.predict` or :meth:`Predictor.explain` and gets a
:class:`~serving.decisions.outcome.Decided` back: a new side effect of a prediction is
added here, once, for every route.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from serving.decisions.decided import Decided
from serving.inference.batching import MicroBatcher, Prediction
from serving.inference.inputs import ClientError
from serving.inference.model import OnnxModel
from serving.monitoring.drift import DriftMonitor
from serving.monitoring.metrics import ServiceMetrics
from serving.settings import OodPolicy

FloatArray = npt.NDArray[np.float32]


class NotLoadedError(RuntimeError):
    """The predictor has no model yet (callers check readiness first)."""


@dataclass(frozen=True, slots=True)
class Explained:
    """An explanation: what was decided, per-pixel contributions and base values."""

    decided: Decided
    contributions: FloatArray  # [n, 64]
    base_values: FloatArray  # [n]
    method: str  # "linear_exact" | "occlusion"


class Predictor:
    """The inference layer of one worker (see the module doc)."""

    def __init__(self, metrics: ServiceMetrics, ood_policy: OodPolicy) -> None:
        self.metrics = metrics
        self.ood_policy = ood_policy
        self.model: OnnxModel | None = None
        self.drift: DriftMonitor | None = None
        self.batcher = MicroBatcher(self._infer, self._observe, metrics.observe_rows)

    def attach(self, model: OnnxModel, drift: DriftMonitor) -> None:
        """Serve ``model`` (verified and warmed) and feed ``drift`` from now on."""
        self.model, self.drift = model, drift

    def _loaded(self) -> OnnxModel:
        if self.model is None:
            raise NotLoadedError("no model loaded")
        return self.model

    def _infer(self, X: FloatArray) -> Prediction:
        return self._loaded().predict_rows(X)

    def _observe(
        self, X: FloatArray, labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float32]
    ) -> None:
        """Once per model call: the drift window, predicted-class and flagged-row counters."""
        if self.drift is not None:
            self.drift.observe(X)
        self.metrics.observe_predictions(labels)
        self.metrics.observe_ood(self._loaded().ood.flags(scores))

    async def predict(self, X: FloatArray) -> Decided:
        """Labels, probabilities and OOD flags and scores of validated ``[n, 64]`` samples
        (one batched model call); the OOD policy's 422 with ``DIGITS_OOD_POLICY=reject``."""
        labels, probabilities, scores = await self.batcher.submit(X)
        return Decided(X, labels, probabilities, self.ood_flags(scores), scores)

    async def explain(self, X: FloatArray) -> Explained:
        """:meth:`predict`, then per-pixel contributions to each row's predicted class.

        The explanation (occlusion: 65 model runs a row) runs in a worker thread, so the
        event loop keeps answering other requests meanwhile; ONNX Runtime releases the GIL.
        """
        decided = await self.predict(X)
        model = self._loaded()
        contributions, base_values = await anyio.to_thread.run_sync(
            model.explain, X, decided.labels
        )
        return Explained(decided, contributions, base_values, model.explanation_method)

    def ood_flags(self, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which rows are out of distribution; with ``DIGITS_OOD_POLICY=reject``, the 422."""
        detector = self._loaded().ood
        flags = detector.flags(scores)
        if self.ood_policy == "reject" and bool(flags.any()):
            rows = np.flatnonzero(flags).tolist()
            shown = ", ".join(str(row) for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
            raise ClientError(
                422,
                "out_of_distribution",
                f"{len(rows)} of {len(flags)} rows do not look like digits (ood_score > "
                f"{detector.flag_above:g}): rows {shown}; DIGITS_OOD_POLICY=reject",
            )
        return flags
