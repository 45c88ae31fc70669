"""JSON Schema of the inference request JSON object, exactly as the decoder accepts it.

What :func:`serving.protocol.oip_decode.decode_request` and
:func:`~serving.protocol.oip_decode.input_batch` accept, written as JSON Schema for the
OpenAPI document: one ``pixels`` input of shape ``[n, 64]`` or ``[n, 8, 8]`` (``n`` from 1
to the row limit), integer data for the integer datatypes, pixels in 0..16, outputs by
name (one named again is answered once). The one rule JSON Schema cannot state is in the
descriptions: ``data`` holds exactly ``prod(shape)`` values in a regular (not ragged)
array. Binary tensor data (``Inference-Header-Content-Length``) is not JSON, so a
JSON-only request leaves ``binary_data_size`` out (or null).
"""

from __future__ import annotations

from typing import Any

from serving.protocol.oip import INPUT_DATATYPES, INPUT_NAME, MODEL_OUTPUTS
from serving.schemas import GRID, N_FEATURES, PIXEL_MAX, PIXEL_MIN

FLOAT_DATATYPES = ["FP32", "FP64"]
INTEGER_DATATYPES = [name for name in INPUT_DATATYPES if name not in FLOAT_DATATYPES]
DATA_DESCRIPTION = (
    "Exactly prod(shape) pixel values, row-major: flat, or a regular nested array of up to "
    "3 levels (e.g. [n][64] or [n][8][8]); each value in 0..16."
)


def _shape_schema(max_rows: int) -> dict[str, Any]:
    rows = {"type": "integer", "minimum": 1, "maximum": max_rows}
    return {
        "description": f"[n, {N_FEATURES}] or [n, {GRID}, {GRID}], n from 1 to {max_rows} rows",
        "oneOf": [
            {
                "type": "array",
                "prefixItems": [rows, {"enum": [N_FEATURES]}],
                "minItems": 2,
                "maxItems": 2,
            },
            {
                "type": "array",
                "prefixItems": [rows, {"enum": [GRID]}, {"enum": [GRID]}],
                "minItems": 3,
                "maxItems": 3,
            },
        ],
    }


def _data_schema(value_type: str, max_rows: int) -> dict[str, Any]:
    """Flat, or nested 2 or 3 levels deep; every array non-empty, every leaf a pixel.

    No array holds more than ``prod(shape)`` values, at most ``64 x max_rows``; a flat one
    holds at least 64 (a whole row).
    """
    most = N_FEATURES * max_rows
    pixel: dict[str, Any] = {"type": value_type, "minimum": PIXEL_MIN, "maximum": PIXEL_MAX}

    def array(items: dict[str, Any], least: int = 1) -> dict[str, Any]:
        return {"type": "array", "minItems": least, "maxItems": most, "items": items}

    flat = array(pixel, N_FEATURES)
    rows = array(array(pixel))
    grids = array(array(array(pixel)))
    return {"description": DATA_DESCRIPTION, "oneOf": [flat, rows, grids]}


def _tensor_schema(max_rows: int, datatypes: list[str], value_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"enum": [INPUT_NAME]},
            "shape": _shape_schema(max_rows),
            "datatype": {"enum": datatypes},
            "parameters": {
                "type": ["object", "null"],
                "description": "binary_data_size belongs to binary tensor data, not to JSON data",
                "properties": {"binary_data_size": {"type": "null"}},
            },
            "data": _data_schema(value_type, max_rows),
        },
    }


def _output_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"enum": [output.name for output in MODEL_OUTPUTS]},
            "parameters": {
                "type": ["object", "null"],
                "description": "binary_data: this output as binary tensor data; no other "
                "parameter is supported (0, false or null mean unset)",
                "properties": {"binary_data": {"type": "boolean"}},
                "additionalProperties": {"enum": [0, False, None]},
            },
        },
    }


def infer_request_schema(max_rows: int) -> dict[str, Any]:
    """The inference request JSON object, with the row limit in force."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["inputs"],
        "properties": {
            "inputs": {
                "type": "array",
                "description": f"Exactly one input, '{INPUT_NAME}'",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "oneOf": [
                        _tensor_schema(max_rows, FLOAT_DATATYPES, "number"),
                        _tensor_schema(max_rows, INTEGER_DATATYPES, "integer"),
                    ]
                },
            },
            "id": {"type": ["string", "null"]},
            "parameters": {
                "type": ["object", "null"],
                "description": "binary_data_output: every output as binary tensor data",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "outputs": {
                "type": ["array", "null"],
                "description": "The outputs to answer, in this order; an output named again "
                "is answered once, where and as it is first named; null or absent: every output",
                "items": _output_schema(),
            },
        },
    }
