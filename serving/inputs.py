"""Decode a request body into a float32 ``[n, 64]`` array, or say exactly what is wrong.

The happy path is msgspec decoding (types and the 0..16 range checked in C)
followed by one ``np.array`` call; the per-row diagnosis runs only on failure.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from serving.schemas import GRID, N_FEATURES, SamplesRequest

_DECODER = msgspec.json.Decoder(SamplesRequest)
_AT = re.compile(r" - at `\$\.?(.*)`$")
_FIELD = re.compile(r"field `([^`]*)`")


class ClientError(Exception):
    """A request the service rejects with a 4xx and the documented error shape."""

    def __init__(self, status: int, reason: str, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.location = location


def _validation_error(exc: msgspec.ValidationError) -> ClientError:
    text = str(exc)
    match = _AT.search(text)
    location = match.group(1) if match else None
    message = text[: match.start()] if match else text
    if "unknown field" in message:
        reason = "unknown_field"
        field = _FIELD.search(message)
        location = field.group(1) if field else location
    elif "missing required field" in message:
        reason = "missing_field"
        field = _FIELD.search(message)
        location = field.group(1) if field else location
    elif "out of range" in message or ">= " in message or "<= " in message:
        reason = "out_of_range"
        message = f"{message}: every pixel must be a finite number in 0..16"
    else:
        reason = "invalid_type"
    return ClientError(400, reason, message, location or "body")


def decode_samples(body: bytes, max_rows: int) -> npt.NDArray[np.float32]:
    """The samples in ``body`` as a contiguous float32 array of shape ``[n, 64]``."""
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ClientError(400, "malformed_json", f"Request body is not valid JSON: {exc}") from None
    samples = request.samples
    n_rows = len(samples)
    if n_rows == 0:
        raise ClientError(400, "empty", "samples must hold at least 1 sample", "samples")
    if n_rows > max_rows:
        raise ClientError(
            413,
            "too_many_rows",
            f"{n_rows} samples exceed the limit of {max_rows} samples per request",
            "samples",
        )
    try:
        X = np.array(samples, dtype=np.float32)
    except (ValueError, TypeError):
        return _diagnose_rows(samples)
    if X.ndim == 2 and X.shape[1] == N_FEATURES:
        return X
    if X.ndim == 3 and X.shape[1:] == (GRID, GRID):
        return X.reshape(n_rows, N_FEATURES)
    return _diagnose_rows(samples)


def _row_array(row: list[Any], index: int) -> npt.NDArray[np.float32]:
    """One sample as 64 floats, or a ClientError that points at the offending element."""
    nested = [isinstance(value, list) for value in row]
    where = f"samples[{index}]"
    expected = f"expected {N_FEATURES} numbers or {GRID} rows of {GRID} numbers"
    if not any(nested):
        if len(row) != N_FEATURES:
            raise ClientError(
                400, "row_length", f"{where} has {len(row)} numbers; {expected}", where
            )
        return np.asarray(row, dtype=np.float32)
    if not all(nested):
        first = nested.index(not nested[0])
        raise ClientError(
            400,
            "ragged",
            f"{where} mixes numbers and lists (element {first}); {expected}",
            f"{where}[{first}]",
        )
    if len(row) != GRID:
        raise ClientError(400, "row_length", f"{where} has {len(row)} rows; {expected}", where)
    for position, inner in enumerate(row):
        if len(inner) != GRID:
            raise ClientError(
                400,
                "ragged",
                f"{where}[{position}] has {len(inner)} numbers; {expected}",
                f"{where}[{position}]",
            )
    return np.asarray(row, dtype=np.float32).reshape(N_FEATURES)


def _diagnose_rows(samples: list[list[Any]]) -> npt.NDArray[np.float32]:
    """Slow path: rows of different (valid) shapes are stacked; the first bad row is reported."""
    return np.stack([_row_array(row, index) for index, row in enumerate(samples)])
