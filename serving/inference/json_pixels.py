"""Plain pixel bodies parsed straight into one float64 buffer, without Python numbers.

msgspec turns every pixel into a Python ``float`` or ``int`` before numpy sees it; for a
100-row body that is 6,400 objects and most of the request's CPU. simdjson (pysimdjson)
parses the body once and copies a JSON array of numbers out as one float64 buffer.

These functions are fast paths only. Each accepts one plain shape of request and returns
``None`` for anything else, so the caller's msgspec path decides everything it does not
recognise, and gives every error message. What a fast path accepts, the msgspec path
accepts too and turns into the same array: the range 0..16 is checked in float64 here
(before the float32 cast, as the msgspec path checks it), and tests/unit/test_json_pixels.py
compares both paths on the same bodies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import simdjson

from serving.schemas import N_FEATURES, PIXEL_MAX, PIXEL_MIN

# Below this size msgspec is as fast or faster: its per-body cost is lower, and the numbers
# are few. Both paths cross at about 8 float rows (2.3 KB); the effect on whole requests is
# the float rows of docs/performance.md (make bench).
MIN_BYTES = 2048

_BOM = b"\xef\xbb\xbf"

# What parsing a body that is not the plain shape can raise: invalid JSON or UTF-8, an
# element of the wrong type, a number out of float64 range or an integer over 64 bits.
_NOT_PLAIN = (ValueError, TypeError, RuntimeError, KeyError, IndexError, UnicodeDecodeError)


def _parse(body: bytes) -> Any:
    """The parsed document of a body worth parsing here, else None.

    simdjson skips a leading UTF-8 byte order mark, which msgspec refuses: such a body is
    left to msgspec.
    """
    if len(body) < MIN_BYTES or body.startswith(_BOM):
        return None
    return simdjson.Parser().parse(body)


def _rows_of_pixels(body: bytes, rows: Any, n_rows: int) -> npt.NDArray[np.float32] | None:
    """``[n_rows, 64]`` float32 from a simdjson array of ``n_rows`` flat 64-number rows.

    as_buffer flattens nested arrays and ragged rows alike, so the shape is proved apart:
    every row is an array of 64 elements, and the body opens exactly ``n_rows + 1``
    arrays (its one key, ``samples``, holds no bracket), so no element is an array.
    """
    if body.count(b"[") != n_rows + 1:
        return None
    if not all(isinstance(row, simdjson.Array) and len(row) == N_FEATURES for row in rows):
        return None
    flat = np.frombuffer(rows.as_buffer(of_type="d"), dtype=np.float64)
    if flat.size != n_rows * N_FEATURES:
        return None
    if not (flat.min() >= PIXEL_MIN and flat.max() <= PIXEL_MAX):  # False for NaN too
        return None
    return flat.astype(np.float32).reshape(n_rows, N_FEATURES)


def samples_pixels(body: bytes, max_rows: int) -> npt.NDArray[np.float32] | None:
    """``{"samples": [[64 numbers], ...]}`` with 1..``max_rows`` rows in 0..16, else None
    (None for bodies under :data:`MIN_BYTES` too)."""
    try:
        document = _parse(body)
        if not isinstance(document, simdjson.Object) or list(document.keys()) != ["samples"]:
            return None
        rows = document["samples"]
        if not isinstance(rows, simdjson.Array) or not 1 <= len(rows) <= max_rows:
            return None
        return _rows_of_pixels(body, rows, len(rows))
    except _NOT_PLAIN:
        return None


def _plain_tensor(tensor: Any, name: str, datatype: str) -> tuple[list[int], Any] | None:
    """A tensor object's shape and data array when it has exactly the four fields, else None."""
    if not isinstance(tensor, simdjson.Object):
        return None
    if sorted(tensor.keys()) != ["data", "datatype", "name", "shape"]:
        return None
    if tensor["name"] != name or tensor["datatype"] != datatype:
        return None
    shape, data = tensor["shape"], tensor["data"]
    if not isinstance(shape, simdjson.Array) or not isinstance(data, simdjson.Array):
        return None
    dims = shape.as_list()
    whole = [dim for dim in dims if type(dim) is int]
    return (whole, data) if len(whole) == len(dims) else None


def tensor_pixels(
    body: bytes, name: str, datatype: str, max_rows: int
) -> tuple[str | None, npt.NDArray[np.float32]] | None:
    """An inference request of one flat tensor, as ``(id, pixels)``, else None.

    Plain: ``{"inputs": [{"name", "shape", "datatype", "data"}], "id"?}`` with exactly
    those fields, the given ``name`` and ``datatype``, shape ``[n, 64]`` (1..``max_rows``
    rows) and ``n * 64`` flat numbers in 0..16. None for bodies under :data:`MIN_BYTES`.
    """
    try:
        document = _parse(body)
        if not isinstance(document, simdjson.Object):
            return None
        keys = sorted(document.keys())
        if keys not in (["inputs"], ["id", "inputs"]):
            return None
        request_id = document["id"] if "id" in keys else None
        inputs = document["inputs"]
        if not isinstance(request_id, str | None) or not isinstance(inputs, simdjson.Array):
            return None
        if len(inputs) != 1 or (plain := _plain_tensor(inputs[0], name, datatype)) is None:
            return None
        shape, data = plain
        if len(shape) != 2 or shape[1] != N_FEATURES or not 1 <= shape[0] <= max_rows:
            return None
        # The body opens three arrays, inputs, shape and data, and the id holds no bracket
        # (name, datatype and the keys are fixed): no element of data is an array.
        if body.count(b"[") != 3 or "[" in (request_id or ""):
            return None
        flat = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
        if flat.size != shape[0] * N_FEATURES or len(data) != flat.size:
            return None
        if not (flat.min() >= PIXEL_MIN and flat.max() <= PIXEL_MAX):
            return None
        return request_id, flat.astype(np.float32).reshape(shape[0], N_FEATURES)
    except _NOT_PLAIN:
        return None
