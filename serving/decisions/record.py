"""The decision record (schema version 1) and the input fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
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


def utc_time(epoch_seconds: float) -> str:
    """RFC 3339 UTC time with milliseconds."""
    moment = dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RecordTime:
    """:func:`utc_time` of many epochs at once, formatting the date and time of each second
    once (a cache of one second)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, epochs: Sequence[float]) -> list[str]:
        stamps = np.asarray(epochs, dtype=np.float64)
        whole = np.floor(stamps)
        micros = np.rint((stamps - whole) * 1e6)  # as datetime rounds: half to even
        whole += micros >= 1_000_000
        millis = (micros % 1_000_000) // 1000
        texts = []
        for second, milli in zip(
            whole.astype(np.int64).tolist(), millis.astype(np.int64).tolist(), strict=True
        ):
            if second != self._second:
                self._second, self._prefix = second, utc_time(second)[:-5]  # without ".000Z"
            texts.append(f"{self._prefix}.{milli:03d}Z")
        return texts


def latency_ms(seconds: Sequence[float]) -> list[float]:
    """Latencies in milliseconds, rounded to whole microseconds."""
    return (np.rint(np.asarray(seconds, dtype=np.float64) * 1e6) / 1000).tolist()  # type: ignore[no-any-return]


def _joined(arrays: list[Any]) -> Any:
    """The arrays stacked along their first axis (one array for many records)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def record_lines(items: Sequence[Pending], with_inputs: bool, time_of: RecordTime) -> list[bytes]:
    """The JSON lines of answered requests, in order (what :class:`DecisionRecord` encodes to).

    Built for many records at once (the writer's chunks): the per-row and per-record
    fields are converted to Python values together, and the lines are encoded in one
    call. A record's input bytes are its rows as C-contiguous little-endian float32 (the
    array itself when it already is).
    """
    if not items:
        return []
    outcomes = [item[9] for item in items]
    labels = _joined([out.labels for out in outcomes]).tolist()
    top = _joined([out.probabilities for out in outcomes]).max(axis=1).tolist()
    ood = _joined([out.ood for out in outcomes]).tolist()
    scores = _joined([out.ood_score for out in outcomes]).tolist()
    times = time_of([item[1] for item in items])
    latencies = latency_ms([item[8] for item in items])
    records = []
    start = 0
    for index, (rid, _, client, route, method, status, version, tag, _, out) in enumerate(items):
        rows = np.ascontiguousarray(out.samples, dtype="<f4")  # as is when already canonical
        n = len(rows)
        stop = start + n
        records.append(
            DecisionRecord(  # positional, in field order: cheaper than keywords
                SCHEMA_VERSION,
                rid,
                times[index],
                client,
                route,
                method,
                status,
                version,
                tag,
                n,
                hashlib.sha256(rows.data).hexdigest(),
                labels[start:stop],
                top[start:stop],
                ood[start:stop],
                scores[start:stop],
                latencies[index],
                rows.reshape(n, -1).tolist() if with_inputs else None,
            )
        )
        start = stop
    return _ENCODER.encode_lines(records).splitlines(keepends=True)
