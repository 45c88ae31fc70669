"""Response building: every prediction becomes response bytes here, for every protocol.

``/predict``, ``/explain`` and the Open Inference Protocol infer answers are built from the
model's labels and probabilities in this one module (a new per-row field is added here).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
import numpy as np
import numpy.typing as npt

from serving.decisions.outcome import note_outcome
from serving.protocol.oip import (
    LABEL_OUTPUT,
    MODEL_OUTPUTS,
    OOD_OUTPUT,
    OOD_SCORE_OUTPUT,
    OUTPUT_DATATYPES,
    PROBABILITIES_OUTPUT,
    AnyInferRequest,
    InferResponse,
    ResponseOutput,
    encode_response,
)
from serving.protocol.oip_decode import (
    CanonicalInferRequest,
    input_batch,
    requested_outputs,
)
from serving.schemas import GRID, ExplainResponse, PredictResponse, SampleExplanation
from serving.state import ServiceState

_ENCODER = msgspec.json.Encoder()
LINEAR_DESCRIPTION = (
    "Exact logit contributions of the linear model: coef[c][j] * (x_j - mean_j) / scale_j for "
    "the predicted class c; their sum plus base_value (the intercept) is the class logit."
)
OCCLUSION_DESCRIPTION = (
    "Occlusion: the drop in the predicted class probability when pixel j is set to 0; "
    "base_value is the unoccluded probability."
)


async def predict_payload(state: ServiceState, X: npt.NDArray[np.float32]) -> bytes:
    """``/predict`` response bytes for validated samples."""
    bundle = state.ready_bundle()
    labels, probabilities, scores = await state.predict(X)
    flags = state.ood_flags(scores)
    note_outcome(X, labels, probabilities, flags, scores)
    return _ENCODER.encode(
        PredictResponse(
            model_version=bundle.version,
            labels=labels.tolist(),
            probabilities=probabilities.tolist(),
            classes=bundle.card.classes,
            ood=flags.tolist(),
            ood_score=scores.tolist(),
        )
    )


async def explain_payload(state: ServiceState, X: npt.NDArray[np.float32]) -> bytes:
    """``/explain`` response bytes for validated samples.

    The explanation itself (occlusion: 65 model runs a row) runs in a worker thread, so the
    event loop keeps answering other requests meanwhile; ONNX Runtime releases the GIL while
    it runs. Everything that touches the request's context (metrics, drift, the decision
    outcome) stays on the loop.
    """
    model, bundle, importance = state.model, state.bundle, state.importance
    if model is None or bundle is None or importance is None:
        raise state.not_ready()
    state.accept_batch(X)
    labels, probabilities, scores = model.predict_rows(X)
    state.metrics.observe_predictions(labels)
    state.metrics.observe_ood(model.ood.flags(scores))
    flags = state.ood_flags(scores)
    note_outcome(X, labels, probabilities, flags, scores)
    contributions, base_values = await anyio.to_thread.run_sync(model.explain, X, labels)
    grids = contributions.reshape(-1, GRID, GRID).tolist()
    linear = model.explanation_method == "linear_exact"
    return _ENCODER.encode(
        ExplainResponse(
            model_version=bundle.version,
            method=model.explanation_method,
            method_description=LINEAR_DESCRIPTION if linear else OCCLUSION_DESCRIPTION,
            global_importance=importance,
            explanations=[
                SampleExplanation(
                    label=label, base_value=base, contributions=grid, ood=flag, ood_score=score
                )
                for label, base, grid, flag, score in zip(
                    labels.tolist(),
                    base_values.tolist(),
                    grids,
                    flags.tolist(),
                    scores.tolist(),
                    strict=True,
                )
            ],
        )
    )


async def infer_payload(
    state: ServiceState, parsed: AnyInferRequest, binary: bytes
) -> tuple[bytes, dict[str, str], str]:
    """Validate, predict and encode one OIP inference request: body, headers, media type."""
    bundle = state.ready_bundle()
    outputs = requested_outputs(parsed)
    X = input_batch(parsed, binary, state.settings.max_rows)
    arrays = _output_arrays(state, X, *(await state.predict(X)))
    response = InferResponse(
        model_name=bundle.card.name,
        model_version=bundle.version,
        id=parsed.id,
        outputs=[
            ResponseOutput(
                name=output, shape=list(arrays[output].shape), datatype=OUTPUT_DATATYPES[output]
            )
            for output, _ in outputs
        ],
    )
    return encode_response(
        response, [arrays[output] for output, _ in outputs], [flag for _, flag in outputs]
    )


async def canonical_infer_payload(
    state: ServiceState,
    request: CanonicalInferRequest[Any],
    X: npt.NDArray[np.float32],
) -> bytes:
    """The JSON answer to a canonical OIP request: the bytes :func:`infer_payload` gives."""
    bundle = state.ready_bundle()
    arrays = _output_arrays(state, X, *(await state.predict(X)))
    return _ENCODER.encode(
        InferResponse(
            model_name=bundle.card.name,
            model_version=bundle.version,
            id=request.id,
            outputs=[
                ResponseOutput(
                    name=output.name,
                    shape=list(arrays[output.name].shape),
                    datatype=output.datatype,
                    data=arrays[output.name].ravel().tolist(),
                )
                for output in MODEL_OUTPUTS
            ],
        )
    )


def _output_arrays(
    state: ServiceState,
    X: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    probabilities: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
) -> dict[str, npt.NDArray[Any]]:
    """Every OIP output by name (the OOD policy applies here, as for /predict)."""
    flags = state.ood_flags(scores)
    note_outcome(X, labels, probabilities, flags, scores)
    return {
        LABEL_OUTPUT: labels,
        PROBABILITIES_OUTPUT: probabilities,
        OOD_OUTPUT: flags,
        OOD_SCORE_OUTPUT: scores,
    }
