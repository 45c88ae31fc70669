"""Decode a request body into a float32 ``[n, 64]`` array, or say exactly what is wrong.

A plain body, ``{"samples": [[64 numbers], ...]}`` in range, is parsed straight into one
buffer (:mod:`serving.inference.json_pixels`). Anything else takes msgspec decoding
(types and the 0..16 range checked in C) followed by one ``np.array`` call; the per-row
diagnosis runs only on failure. Flat integer rows are tried first there, and become one
uint8 buffer (:func:`integer_pixels`); anything else, errors included, is decoded by the
general path, which gives every error message.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from serving.http.msgspec_text import field_name, split_location
from serving.inference.json_pixels import samples_pixels
from serving.schemas import (
    GRID,
    N_FEATURES,
    PIXEL_MAX,
    PIXEL_MIN,
    IntSamplesRequest,
    SamplesRequest,
)

_DECODER = msgspec.json.Decoder(SamplesRequest)
_INT_DECODER = msgspec.json.Decoder(IntSamplesRequest)


class ClientError(Exception):
    """A request the service rejects with a 4xx and the documented error shape."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        location: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.location = location
        self.headers = headers or {}


def _validation_error(exc: msgspec.ValidationError) -> ClientError:
    message, location = split_location(str(exc))
    if "unknown field" in message:
        reason = "unknown_field"
        location = field_name(message) or location
    elif "missing required field" in message:
        reason = "missing_field"
        location = field_name(message) or location
    elif "out of range" in message or ">= " in message or "<= " in message:
        reason = "out_of_range"
        message = f"{message}: every pixel must be a finite number in 0..16"
    else:
        reason = "invalid_type"
    return ClientError(400, reason, message, location or "body")


def decode_samples(body: bytes, max_rows: int) -> npt.NDArray[np.float32]:
    """The samples in ``body`` as a contiguous float32 array of shape ``[n, 64]``."""
    plain = samples_pixels(body, max_rows)
    if plain is not None:
        return plain
    try:
        rows = _INT_DECODER.decode(body).samples
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass  # not flat integer rows (or not valid): the general path decides and explains
    else:
        check_row_count(len(rows), max_rows, "samples")
        return integer_pixels(b"".join(map(bytes, rows)), len(rows))
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ClientError(400, "malformed_json", f"Request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec, on invalid UTF-8 in an unknown key
        message = f"Request body is not valid UTF-8: {exc}"
        raise ClientError(400, "malformed_json", message) from None
    except RecursionError:
        raise ClientError(400, "malformed_json", "Request body is nested too deeply") from None
    samples = request.samples
    n_rows = len(samples)
    check_row_count(n_rows, max_rows, "samples")
    try:
        X = np.array(samples, dtype=np.float32)
    except (ValueError, TypeError):
        return pixel_batch(_diagnose_rows(samples), max_rows, "samples")
    if X.ndim == 2 and X.shape[1] == N_FEATURES:
        return pixel_batch(X, max_rows, "samples")
    if X.ndim == 3 and X.shape[1:] == (GRID, GRID):
        return pixel_batch(X.reshape(n_rows, N_FEATURES), max_rows, "samples")
    return pixel_batch(_diagnose_rows(samples), max_rows, "samples")


def integer_pixels(pixels: bytes, n_rows: int) -> npt.NDArray[np.float32]:
    """``[n_rows, 64]`` float32 from one byte per pixel (integers already checked 0..16)."""
    return np.frombuffer(pixels, dtype=np.uint8).astype(np.float32).reshape(n_rows, N_FEATURES)


def check_row_count(n_rows: int, max_rows: int, location: str) -> None:
    """The row limit shared by every inference route: 1 to ``max_rows`` samples."""
    if n_rows < 1:
        raise ClientError(400, "empty", f"{location} must hold at least 1 sample", location)
    if n_rows > max_rows:
        raise ClientError(
            413,
            "too_many_rows",
            f"{n_rows} samples exceed the limit of {max_rows} samples per request",
            location,
        )


def pixel_batch(X: npt.NDArray[Any], max_rows: int, location: str) -> npt.NDArray[np.float32]:
    """The one validation every inference route applies to its decoded array.

    ``X`` must be ``[n, 64]``; returns it as contiguous float32 after checking the row
    limit and that every pixel is finite and in 0..16 (two vectorised reductions; the
    offending element is located only on failure). The range is checked in ``X``'s own
    dtype, before the cast: a float64 just past 16 must not round into range.
    """
    check_row_count(int(X.shape[0]), max_rows, location)
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ClientError(
            400, "row_length", f"{location}: expected shape [n, {N_FEATURES}], got {list(X.shape)}"
        )
    low, high = X.min(), X.max()
    if low >= PIXEL_MIN and high <= PIXEL_MAX:  # False for NaN too
        return np.ascontiguousarray(X, dtype=np.float32)
    bad = ~((X >= PIXEL_MIN) & (X <= PIXEL_MAX))
    row, column = (int(index) for index in np.argwhere(bad)[0])
    value = float(X[row, column])
    raise ClientError(
        400,
        "out_of_range",
        f"{value} is not allowed: every pixel must be a finite number in 0..16",
        f"{location}[{row}][{column}]",
    )


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
