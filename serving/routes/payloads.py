"""Response encoding: what the predictor decided becomes answer bytes here, per protocol.

``/predict``, ``/explain`` and the Open Inference Protocol infer answers are encoded from a
:class:`~serving.decisions.outcome.Decided` in this one module (a new per-row field is
added here); the predictor (:mod:`serving.inference.predictor`) made it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy.typing as npt

from serving.decisions.decided import Decided
from serving.inference.predictor import Explained
from serving.lineage import VerifiedBundle
from serving.protocol.oip import (
    LABEL_OUTPUT,
    MODEL_OUTPUTS,
    OOD_OUTPUT,
    OOD_SCORE_OUTPUT,
    OUTPUT_DATATYPES,
    PROBABILITIES_OUTPUT,
    InferResponse,
    ResponseOutput,
    encode_response,
)
from serving.schemas import (
    GRID,
    ExplainResponse,
    GlobalImportance,
    PredictResponse,
    SampleExplanation,
)

_ENCODER = msgspec.json.Encoder()
LINEAR_DESCRIPTION = (
    "Exact logit contributions of the linear model: coef[c][j] * (x_j - mean_j) / scale_j for "
    "the predicted class c; their sum plus base_value (the intercept) is the class logit."
)
OCCLUSION_DESCRIPTION = (
    "Occlusion: the drop in the predicted class probability when pixel j is set to 0; "
    "base_value is the unoccluded probability."
)


def predict_body(bundle: VerifiedBundle, decided: Decided) -> bytes:
    """``/predict`` answer bytes."""
    return _ENCODER.encode(
        PredictResponse(
            model_version=bundle.version,
            labels=decided.labels.tolist(),
            probabilities=decided.probabilities.tolist(),
            classes=bundle.card.classes,
            ood=decided.ood.tolist(),
            ood_score=decided.ood_score.tolist(),
        )
    )


def explain_body(
    bundle: VerifiedBundle, importance: GlobalImportance, explained: Explained
) -> bytes:
    """``/explain`` answer bytes."""
    decided = explained.decided
    grids = explained.contributions.reshape(-1, GRID, GRID).tolist()
    linear = explained.method == "linear_exact"
    return _ENCODER.encode(
        ExplainResponse(
            model_version=bundle.version,
            method=explained.method,
            method_description=LINEAR_DESCRIPTION if linear else OCCLUSION_DESCRIPTION,
            global_importance=importance,
            explanations=[
                SampleExplanation(
                    label=label, base_value=base, contributions=grid, ood=flag, ood_score=score
                )
                for label, base, grid, flag, score in zip(
                    decided.labels.tolist(),
                    explained.base_values.tolist(),
                    grids,
                    decided.ood.tolist(),
                    decided.ood_score.tolist(),
                    strict=True,
                )
            ],
        )
    )


def infer_body(
    bundle: VerifiedBundle,
    request_id: str | None,
    outputs: list[tuple[str, bool]],
    decided: Decided,
) -> tuple[bytes, dict[str, str], str]:
    """An OIP inference answer for the requested ``outputs``: body, headers, media type."""
    arrays = _output_arrays(decided)
    response = InferResponse(
        model_name=bundle.card.name,
        model_version=bundle.version,
        id=request_id,
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


def canonical_infer_body(bundle: VerifiedBundle, request_id: str | None, decided: Decided) -> bytes:
    """The JSON answer to a canonical OIP request: the bytes :func:`infer_body` gives."""
    arrays = _output_arrays(decided)
    return _ENCODER.encode(
        InferResponse(
            model_name=bundle.card.name,
            model_version=bundle.version,
            id=request_id,
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


def _output_arrays(decided: Decided) -> dict[str, npt.NDArray[Any]]:
    """Every OIP output by name."""
    return {
        LABEL_OUTPUT: decided.labels,
        PROBABILITIES_OUTPUT: decided.probabilities,
        OOD_OUTPUT: decided.ood,
        OOD_SCORE_OUTPUT: decided.ood_score,
    }
