"""The decision record (schema version 1) and the input fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
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


class RecordTime:
    """:func:`utc_time`, formatting the date and time of each second once (a cache of one)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, epoch: float) -> str:
        whole = math.floor(epoch)
        micros = round((epoch - whole) * 1e6)  # as datetime rounds: half to even
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        if whole != self._second:
            self._second, self._prefix = whole, utc_time(whole)[:-5]  # without ".000Z"
        return f"{self._prefix}.{micros // 1000:03d}Z"


def record_line(item: Pending, with_inputs: bool, time_of: RecordTime) -> bytes:
    """The JSON line of one answered request (what :class:`DecisionRecord` encodes to)."""
    rid, started, client, route, method, status, version, tag, seconds, out = item
    rows = canonical_rows(out.samples)
    record = DecisionRecord(  # positional, in field order: cheaper than keywords
        SCHEMA_VERSION,
        rid,
        time_of(started),
        client,
        route,
        method,
        status,
        version,
        tag,
        len(rows),
        input_sha256(rows),
        out.labels.tolist(),
        out.probabilities.max(axis=1).tolist(),
        out.ood.tolist(),
        out.ood_score.tolist(),
        round(seconds * 1000, 3),
        rows.tolist() if with_inputs else None,
    )
    return _ENCODER.encode(record) + b"\n"
