"""The decision record (schema version 1) and the input fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("decision_record.v1.schema.json")


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
