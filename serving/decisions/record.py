"""The decision record (schema version 1) and the input fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from serving.decisions.outcome import Outcome

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("decision_record.v1.schema.json")
_ENCODER = msgspec.json.Encoder()

# What the chain step queues per answered request: (request id, start epoch, client id,
# route, method, status, model version, registry tag, latency seconds, outcome).
Pending = tuple[str, float, str | None, str, str, int, str, str | None, float, Outcome]


class DecisionRecord(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """One answered request. ``inputs`` only with ``DIGITS_DECISION_LOG_INPUTS=true``."""

    schema_version: int
    request_id: str
    time: str
    client_id: str | None
    route: str
    method: str
    status: int
    model_version: str
    registry_tag: str | None
    rows: int
    input_sha256: str
    labels: list[int]
    top_probability: list[float]
    ood: list[bool]
    ood_score: list[float]
    latency_ms: float
    inputs: list[list[float]] | None = None


def canonical_rows(samples: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The canonical form of validated input rows: C-contiguous float32 ``[n, 64]``."""
    rows = np.ascontiguousarray(samples, dtype=np.float32)
    return rows.reshape(rows.shape[0], -1)


def input_sha256(samples: Any) -> str:
    """sha256 of the canonical float32 rows' bytes (little-endian, row-major)."""
    rows = canonical_rows(samples).astype("<f4", copy=False)
    return hashlib.sha256(rows.tobytes()).hexdigest()


def utc_time(epoch_seconds: float) -> str:
    """RFC 3339 UTC time with milliseconds."""
    moment = dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc_times(epochs: Sequence[float]) -> list[str]:
    """:func:`utc_time` of each epoch, formatting each distinct second once."""
    seconds: dict[int, str] = {}
    times = []
    for epoch in epochs:
        whole = math.floor(epoch)
        micros = round((epoch - whole) * 1e6)  # as datetime rounds: half to even
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        prefix = seconds.get(whole)
        if prefix is None:
            prefix = seconds[whole] = utc_time(whole)[:-5]  # without ".000Z"
        times.append(f"{prefix}.{micros // 1000:03d}Z")
    return times


def encode_records(items: Sequence[Pending], with_inputs: bool) -> list[bytes]:
    """One JSON line per queued request, built batch-wise.

    The per-row arrays of every request are concatenated so that the top probabilities
    and the conversions to lists run once per batch instead of once per record; the
    sha256 of each request's canonical rows is its own. Same bytes as building each
    record alone (tests/unit/test_decisions.py).
    """
    if not items:
        return []
    outcomes = [item[9] for item in items]
    bounds = np.cumsum([0, *(len(out.labels) for out in outcomes)]).tolist()
    labels = np.concatenate([out.labels for out in outcomes]).tolist()
    top = np.concatenate([out.probabilities for out in outcomes]).max(axis=1).tolist()
    flags = np.concatenate([out.ood for out in outcomes]).tolist()
    scores = np.concatenate([out.ood_score for out in outcomes]).tolist()
    times = _utc_times([item[1] for item in items])
    lines = []
    for index, (rid, _, client, route, method, status, version, tag, seconds, out) in enumerate(
        items
    ):
        rows = out.samples
        if not (isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.dtype.str == "<f4"):
            rows = canonical_rows(rows)
        elif not rows.flags.c_contiguous:
            rows = np.ascontiguousarray(rows)
        start, stop = bounds[index], bounds[index + 1]
        record = DecisionRecord(  # positional, in field order (3x faster than keywords)
            SCHEMA_VERSION,
            rid,
            times[index],
            client,
            route,
            method,
            status,
            version,
            tag,
            stop - start,
            hashlib.sha256(rows.data).hexdigest(),
            labels[start:stop],
            top[start:stop],
            flags[start:stop],
            scores[start:stop],
            round(seconds * 1000, 3),
            rows.tolist() if with_inputs else None,
        )
        lines.append(_ENCODER.encode(record) + b"\n")
    return lines
