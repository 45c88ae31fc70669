"""What the event loop queues per answered request, and how a chunk of them is packed.

:func:`pack` turns answered requests into one msgpack chunk
(:class:`~serving.decisions.record.Chunk`: ids and timings as columns, the arrays stacked
as bytes, no per-record conversion), the cheap part, done in the worker;
:func:`serving.decisions.record.chunk_lines` makes the JSON lines, normally in the encoder
process, which needs no numpy (this module does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np

from serving.decisions.decided import Decided
from serving.decisions.record import Chunk, Packed, RecordModel

_PACKER = msgspec.msgpack.Encoder()


class Pending(NamedTuple):
    """What the chain step queues per answered request (fields by name; a tuple, so a
    chunk of them is transposed with one ``zip``)."""

    request_id: str
    client_request_id: str | None
    started: float  # epoch seconds
    client_id: str | None
    route: str
    method: str
    status: int
    model: RecordModel
    seconds: float  # latency
    outcome: Decided


def packed(array: Any, rows: int) -> Packed:
    """``array`` (``rows`` along its first axis) as dtype, shape and C-order bytes."""
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject or array.ndim == 0 or len(array) != rows:
        raise ValueError(f"not a numeric array of {rows} rows: {array.dtype} {array.shape}")
    return Packed(array.dtype.str, array.shape, array.data)


def _joined(arrays: Sequence[Any]) -> Any:
    """The arrays stacked along their first axis (one array for many records)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def pack(items: Sequence[Pending]) -> bytes:
    """Answered requests as one msgpack :class:`~serving.decisions.record.Chunk` (their
    arrays stacked, not converted).

    Raises ``ValueError``/``TypeError`` when an item's arrays do not fit its row count."""
    *columns, outs = zip(*items, strict=True)
    # Pending's first nine fields are Chunk's first nine, in the same order.
    head: dict[str, Any] = dict(zip(Chunk.__struct_fields__, columns, strict=False))
    rows = tuple(len(out.samples) for out in outs)
    total = sum(rows)
    try:  # the usual chunk: every request's rows have the same shape
        samples = np.concatenate([out.samples for out in outs], dtype="<f4")
    except (ValueError, TypeError):
        canonical = [np.ascontiguousarray(out.samples, dtype="<f4") for out in outs]
        samples = np.concatenate([sample.reshape(len(sample), -1) for sample in canonical])
    return _PACKER.encode(
        Chunk(
            **head,
            rows=rows,
            samples=packed(samples.reshape(total, -1), total),
            labels=packed(_joined([out.labels for out in outs]), total),
            top_probability=packed(_joined([out.probabilities for out in outs]).max(axis=1), total),
            ood=packed(_joined([out.ood for out in outs]), total),
            ood_score=packed(_joined([out.ood_score for out in outs]), total),
        )
    )
