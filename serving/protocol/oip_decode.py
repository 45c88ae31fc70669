"""Decode and validate Open Inference Protocol inference requests into a pixel batch.

The pixels go through the same validation as ``/predict``
(:func:`serving.inference.inputs.pixel_batch`); every problem is an
:class:`~serving.protocol.oip.OipError` (400) that says what is wrong.
"""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from serving.inference.inputs import check_row_count, integer_pixels, pixel_batch
from serving.inference.json_pixels import tensor_pixels
from serving.protocol.oip import (
    INPUT_DATATYPES,
    INPUT_NAME,
    MODEL_OUTPUTS,
    OUTPUT_DATATYPES,
    AnyInferRequest,
    FlatInferRequest,
    FlatRequestInput,
    InferRequest,
    OipError,
    RequestInput,
)
from serving.schemas import GRID, N_FEATURES, IntPixel, Pixel

_INTEGER_DATATYPES = frozenset(name for name in INPUT_DATATYPES if "INT" in name)
# Data decodes as float64 for every datatype: an integer datatype takes whole numbers,
# written 3 or 3.0 alike (JSON Schema's integer), checked after decoding.
_NESTED_TYPES: dict[int, Any] = {1: list[float], 2: list[list[float]], 3: list[list[list[float]]]}
_DATA_DECODERS = {depth: msgspec.json.Decoder(kind) for depth, kind in _NESTED_TYPES.items()}
_OPEN_BRACKET = ord("[")
_WHITESPACE = frozenset(b" \t\r\n")

_REQUEST_DECODER = msgspec.json.Decoder(InferRequest)


P = TypeVar("P")  # a pixel: integer (tried first) or float, 0..16 either way


class CanonicalInput(msgspec.Struct, Generic[P], forbid_unknown_fields=True):
    """The input most clients send: flat JSON pixels, range-checked while decoding."""

    name: str
    shape: list[int]
    datatype: str
    data: list[P]


class CanonicalInferRequest(msgspec.Struct, Generic[P], forbid_unknown_fields=True):
    """One input, no parameters, every output as JSON: the request most clients send."""

    inputs: list[CanonicalInput[P]]
    id: str | None = None


_FLAT_DECODER = msgspec.json.Decoder(FlatInferRequest)
# (integer pixels?, decoder): integers first, they convert through one uint8 buffer.
_CANONICAL_DECODERS = (
    (True, msgspec.json.Decoder(CanonicalInferRequest[IntPixel])),
    (False, msgspec.json.Decoder(CanonicalInferRequest[Pixel])),
)
_FLOAT_DATATYPES = frozenset({"FP32", "FP64"})
_PIXEL_SHAPES = ([N_FEATURES], [GRID, GRID])


def _bad(reason: str, message: str) -> OipError:
    return OipError(400, reason, message)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tensor section (binary tensor data extension)."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise _bad(
            "invalid_request",
            f"Inference-Header-Content-Length must be an integer in 1..{len(body)} "
            f"(the body size), got {header_length!r}",
        )
    return body[:length], body[length:]


def decode_request(header: bytes) -> AnyInferRequest:
    """The inference request JSON object, or a 400 that says what is wrong.

    Flat floating-point data (what most clients send) is decoded straight into a typed
    list in one pass; anything else (nested or integer data, binary tensors) is
    decoded again with the general schema, which also produces the error messages.
    """
    try:
        flat = _FLAT_DECODER.decode(header)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        pass
    else:
        if all(tensor.datatype in _FLOAT_DATATYPES for tensor in flat.inputs):
            return flat
    try:
        return _REQUEST_DECODER.decode(header)
    except msgspec.ValidationError as exc:
        raise _bad("invalid_request", f"invalid inference request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise _bad("malformed_json", f"inference request is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's depth guard, e.g. 10,000 nested lists in "data"
        raise _bad("malformed_json", "inference request is nested too deeply") from None
    except UnicodeDecodeError as exc:  # msgspec, on invalid UTF-8 in an unknown key
        raise _bad("malformed_json", f"inference request is not valid UTF-8: {exc}") from None


def _json_values(tensor: RequestInput) -> Any:
    raw = tensor.data
    depth = 0
    for byte in bytes(memoryview(raw)[:64]):
        if byte == _OPEN_BRACKET:
            depth += 1
        elif byte not in _WHITESPACE:
            break
    decoder = _DATA_DECODERS.get(depth)
    if decoder is None:
        raise _bad(
            "invalid_data",
            f"input '{tensor.name}': data must be a flat or nested (up to 3 levels) array "
            "of numbers",
        )
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        kind = "integer" if tensor.datatype in _INTEGER_DATATYPES else "number"
        raise _bad(
            "invalid_data",
            f"input '{tensor.name}': data for {tensor.datatype} must hold only {kind}s: {exc}",
        ) from None


def _dimensions(tensor: RequestInput | FlatRequestInput) -> list[int]:
    """The shape as integers; a size must be a whole number (3 or 3.0)."""
    if not all(size.is_integer() for size in tensor.shape):
        raise _bad(
            "invalid_shape",
            f"input '{tensor.name}': shape sizes must be whole numbers, got {tensor.shape}",
        )
    return [int(size) for size in tensor.shape]


def input_batch(request: AnyInferRequest, binary: bytes, max_rows: int) -> npt.NDArray[np.float32]:
    """The ``pixels`` input as a validated float32 ``[n, 64]`` batch."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        names = [tensor.name for tensor in request.inputs]
        raise _bad(
            "invalid_input",
            f"expected exactly one input named '{INPUT_NAME}', got {names}",
        )
    tensor = request.inputs[0]
    dtype = INPUT_DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise _bad(
            "unsupported_datatype",
            f"input '{tensor.name}': datatype {tensor.datatype!r} is not supported; "
            f"use one of {', '.join(INPUT_DATATYPES)}",
        )
    shape = _dimensions(tensor)
    if len(shape) not in (2, 3) or shape[1:] not in ([N_FEATURES], [GRID, GRID]):
        raise _bad(
            "invalid_shape",
            f"input '{tensor.name}': shape must be [n, {N_FEATURES}] or [n, {GRID}, {GRID}], "
            f"got {shape}",
        )
    n_rows = shape[0]
    check_row_count(n_rows, max_rows, f"inputs[0].shape[0] of '{tensor.name}'")
    expected = math.prod(shape)
    parameters = tensor.parameters or {}
    binary_size = parameters.get("binary_data_size")
    if isinstance(tensor, FlatRequestInput):
        if binary_size is not None or binary:
            raise _bad("invalid_data", f"input '{tensor.name}': both data and binary data")
        values = np.fromiter(tensor.data, dtype=np.float64, count=len(tensor.data))
    elif binary_size is not None:
        if len(tensor.data):
            raise _bad("invalid_data", f"input '{tensor.name}': both data and binary_data_size")
        if binary_size != len(binary):
            raise _bad(
                "invalid_data",
                f"input '{tensor.name}': binary_data_size {binary_size} does not match the "
                f"{len(binary)} bytes after the JSON header",
            )
        if len(binary) != expected * dtype.itemsize:
            raise _bad(
                "shape_mismatch",
                f"input '{tensor.name}': shape {shape} of {tensor.datatype} needs "
                f"{expected * dtype.itemsize} bytes, got {len(binary)}",
            )
        values = np.frombuffer(binary, dtype=dtype)
    else:
        if binary:
            raise _bad("invalid_data", "binary data after the JSON header but no input uses it")
        if not len(tensor.data):
            raise _bad("invalid_data", f"input '{tensor.name}': data is missing")
        try:
            values = np.array(_json_values(tensor), dtype=np.float64)
        except (ValueError, TypeError):
            raise _bad(
                "invalid_data", f"input '{tensor.name}': data is ragged (rows of different sizes)"
            ) from None
        if tensor.datatype in _INTEGER_DATATYPES and not np.array_equal(values, np.trunc(values)):
            raise _bad(
                "invalid_data",
                f"input '{tensor.name}': data for {tensor.datatype} must hold only integers",
            )
    if values.size != expected:
        raise _bad(
            "shape_mismatch",
            f"input '{tensor.name}': shape {shape} holds {expected} values, data has {values.size}",
        )
    return pixel_batch(values.reshape(n_rows, N_FEATURES), max_rows, "inputs[0].data")


def requested_outputs(request: AnyInferRequest) -> list[tuple[str, bool]]:
    """``(output name, binary?)`` in the requested order; all outputs when none are named.

    An output named more than once is answered once, where it is first named and as that
    first mention asks (binary or JSON); every mention is validated all the same.
    """
    parameters = request.parameters or {}
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise _bad("invalid_request", "parameters.binary_data_output must be a boolean")
    if request.outputs is None:
        return [(output.name, binary_default) for output in MODEL_OUTPUTS]
    chosen: dict[str, bool] = {}
    for output in request.outputs:
        if output.name not in OUTPUT_DATATYPES:
            raise _bad(
                "unknown_output",
                f"unknown output '{output.name}'; the model's outputs are "
                f"{', '.join(OUTPUT_DATATYPES)}",
            )
        options = output.parameters or {}
        unsupported = sorted(
            key
            for key, value in options.items()
            if key not in ("binary_data",) and value not in (0, False, None)
        )
        if unsupported:
            raise _bad(
                "unsupported_parameter",
                f"output '{output.name}': parameters {unsupported} are not supported "
                "(no classification or shared-memory extension)",
            )
        binary = options.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise _bad("invalid_request", f"output '{output.name}': binary_data must be boolean")
        chosen.setdefault(output.name, binary)
    return list(chosen.items())


def _decode_canonical(body: bytes) -> tuple[CanonicalInferRequest[Any], bool] | None:
    """The canonical request and whether its pixels are integers; None if not canonical."""
    for integer, decoder in _CANONICAL_DECODERS:
        try:
            return decoder.decode(body), integer
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            continue
    return None


def canonical_batch(
    body: bytes, max_rows: int
) -> tuple[str | None, npt.NDArray[np.float32]] | None:
    """The request id and validated batch of a canonical request, else None.

    Canonical: one FP32 ``pixels`` input of shape ``[n, 64]`` or ``[n, 8, 8]`` with
    ``n * 64`` flat values in 0..16 and 1 to ``max_rows`` rows, no parameters, no
    outputs named. Those values are accepted by :func:`input_batch` too and give the
    same array; anything else (including every error) takes the general path. The plain
    ``[n, 64]`` request is parsed straight into one buffer
    (:func:`serving.inference.json_pixels.tensor_pixels`); the others are decoded with
    msgspec, integer pixels first, converted through one uint8 buffer as for ``/predict``.
    """
    plain = tensor_pixels(body, INPUT_NAME, "FP32", max_rows)
    if plain is not None:
        return plain
    decoded = _decode_canonical(body)
    if decoded is None:
        return None
    request, integer = decoded
    if len(request.inputs) != 1:
        return None
    tensor = request.inputs[0]
    shape = tensor.shape
    if tensor.name != INPUT_NAME or tensor.datatype != "FP32" or shape[1:] not in _PIXEL_SHAPES:
        return None
    n_rows = shape[0]
    if not 1 <= n_rows <= max_rows or len(tensor.data) != n_rows * N_FEATURES:
        return None
    if integer:
        return request.id, integer_pixels(bytes(tensor.data), n_rows)
    return request.id, np.array(tensor.data, dtype=np.float32).reshape(n_rows, N_FEATURES)
