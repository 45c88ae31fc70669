"""msgspec wire schemas: the request decoder type, responses and the one error shape."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

PIXEL_MIN = 0.0
PIXEL_MAX = 16.0
N_FEATURES = 64
GRID = 8

Pixel = Annotated[float, msgspec.Meta(ge=PIXEL_MIN, le=PIXEL_MAX)]
IntPixel = Annotated[int, msgspec.Meta(ge=int(PIXEL_MIN), le=int(PIXEL_MAX))]


class SamplesRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What ``/predict`` and ``/explain`` decode.

    Each sample is a flat list of 64 pixels or an 8x8 nested list; the shape is
    checked after decoding (vectorised), the 0..16 range while decoding.
    """

    samples: list[list[Pixel | list[Pixel]]]


class IntSamplesRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The common case of :class:`SamplesRequest`: flat rows of 64 integer pixels.

    Decoded first (integers 0..16 need no float objects: CPython caches small ints, and
    the rows convert to one uint8 buffer); any other body falls back to the general type.
    """

    samples: list[
        Annotated[list[IntPixel], msgspec.Meta(min_length=N_FEATURES, max_length=N_FEATURES)]
    ]


class ErrorResponse(msgspec.Struct):
    """The body of every 4xx (and 5xx/503) answer."""

    status: int
    reason: str
    message: str
    location: str | None = None
    request_id: str | None = None


class PredictResponse(msgspec.Struct):
    model_version: str
    labels: list[int]
    probabilities: list[list[float]]
    classes: list[int]
    # One entry per row: does the out-of-distribution detector flag it, and its score
    # (> 1 is flagged; see GET /model for the detector).
    ood: list[bool]
    ood_score: list[float]


class GlobalImportance(msgspec.Struct):
    method: str
    scoring: str | None
    values: list[float]
    grid: list[list[float]]


class SampleExplanation(msgspec.Struct):
    label: int
    base_value: float
    contributions: list[list[float]]
    ood: bool
    ood_score: float


class ExplainResponse(msgspec.Struct):
    model_version: str
    method: str
    method_description: str
    global_importance: GlobalImportance
    explanations: list[SampleExplanation]


class HealthResponse(msgspec.Struct):
    status: str


class ReadyResponse(msgspec.Struct):
    status: str
    model_version: str | None = None
    reason: str | None = None
    message: str | None = None


class ArtifactInfo(msgspec.Struct):
    path: str
    md5: str
    size: int


class RegistryResponse(msgspec.Struct):
    """The GTO registry entry of the served model: the one the image was built from
    (``make image REF=...``), or the registered version whose commit pins the working
    copy's served files (``make release``); decision records carry its version, stage
    and commit."""

    artifact: str
    version: str
    stage: str | None
    ref: str | None
    commit: str | None


class StageResponse(msgspec.Struct):
    name: str
    cmd: str
    params: dict[str, Any]


class ModelResponse(msgspec.Struct):
    name: str
    version: str
    model_type: str
    classes: list[int]
    artifacts: dict[str, ArtifactInfo]
    stage: StageResponse
    evaluate_stage: StageResponse | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    training_library_versions: dict[str, str]
    serving_library_versions: dict[str, str]
    # Lineage root: the raw dataset (data-prep's data.source dependency in dvc.lock).
    raw_data: ArtifactInfo | None = None
    # The GTO registry version, stage and commit; null for an unregistered working copy.
    registry: RegistryResponse | None = None


def _pixel_schema() -> dict[str, Any]:
    return {"type": "number", "minimum": PIXEL_MIN, "maximum": PIXEL_MAX}


FLAT_SAMPLE_SCHEMA: dict[str, Any] = {
    "title": "FlatSample",
    "description": "64 pixel intensities (row-major 8x8 image), each finite and in 0..16.",
    "type": "array",
    "minItems": N_FEATURES,
    "maxItems": N_FEATURES,
    "items": _pixel_schema(),
}
GRID_SAMPLE_SCHEMA: dict[str, Any] = {
    "title": "GridSample",
    "description": "An 8x8 image: 8 rows of 8 pixel intensities, each finite and in 0..16.",
    "type": "array",
    "minItems": GRID,
    "maxItems": GRID,
    "items": {"type": "array", "minItems": GRID, "maxItems": GRID, "items": _pixel_schema()},
}
EXAMPLE_DIGIT = [
    [0, 0, 5, 13, 9, 1, 0, 0],
    [0, 0, 13, 15, 10, 15, 5, 0],
    [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0],
    [0, 5, 8, 0, 0, 9, 8, 0],
    [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0],
    [0, 0, 6, 13, 10, 0, 0, 0],
]
EXAMPLE_FLAT = [value for row in EXAMPLE_DIGIT for value in row]


def samples_request_schema(max_rows: int) -> dict[str, Any]:
    """JSON schema of the request body, with the row limit in force."""
    return {
        "title": "SamplesRequest",
        "type": "object",
        "additionalProperties": False,
        "required": ["samples"],
        "properties": {
            "samples": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_rows,
                "description": f"1 to {max_rows} samples; flat and 8x8 samples may be mixed.",
                "items": {"oneOf": [FLAT_SAMPLE_SCHEMA, GRID_SAMPLE_SCHEMA]},
            }
        },
    }
