"""The request bodies of the benchmarks: the same pixels for every route and every server.

Two kinds of pixels, both valid (0..16, 64 per row), seeded by the row count:

* ``int``: integers written as integers (``13``), what the demo page sends;
* ``float``: the same integers written as floats (``13.0``), an eighth of them moved up by
  a half (``7.5``), what many clients send (numpy arrays, other languages' JSON encoders).
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import numpy.typing as npt

Pixels = Literal["int", "float"]
OIP_ROUTE = "/v2/models/digits-classifier/infer"
# MLServer's scikit-learn runtime answers `predict` alone unless asked: the benchmark asks
# for labels and probabilities, what `/predict` answers.
MLSERVER_OUTPUTS = [{"name": "predict"}, {"name": "predict_proba"}]


def pixels(rows: int, kind: Pixels) -> npt.NDArray[np.float64]:
    """``rows`` x 64 pixel values of ``kind``."""
    rng = np.random.default_rng(rows)
    values = rng.integers(0, 17, size=(rows, 64)).astype(np.float64)
    if kind == "float":
        halves = (rng.random(values.shape) < 0.125) & (values < 16)
        values[halves] += 0.5
    return values


def _json_values(values: npt.NDArray[np.float64], kind: Pixels) -> list[float] | list[int]:
    flat = values.ravel()
    return flat.tolist() if kind == "float" else flat.astype(np.int64).tolist()


def predict_body(rows: int, kind: Pixels = "int") -> bytes:
    """``{"samples": [[...64 pixels], ...]}`` for ``POST /predict`` (and the floor)."""
    values = pixels(rows, kind)
    flat = _json_values(values, kind)
    samples = [flat[start : start + 64] for start in range(0, len(flat), 64)]
    return json.dumps({"samples": samples}, separators=(",", ":")).encode()


def oip_body(rows: int, kind: Pixels = "int", outputs: list[dict[str, str]] | None = None) -> bytes:
    """An Open Inference Protocol request: one FP32 tensor ``[rows, 64]``, flat data."""
    tensor = {
        "name": "pixels",
        "shape": [rows, 64],
        "datatype": "FP32",
        "data": _json_values(pixels(rows, kind), kind),
    }
    payload: dict[str, object] = {"inputs": [tensor]}
    if outputs:
        payload["outputs"] = outputs
    return json.dumps(payload, separators=(",", ":")).encode()


def request_body(rows: int, route: str = "/predict") -> bytes:
    """Integer pixels for ``route`` (``/predict`` or :data:`OIP_ROUTE`)."""
    return oip_body(rows) if route == OIP_ROUTE else predict_body(rows)
