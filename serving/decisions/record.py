"""The decision record (schema version 3), its input fingerprint, and the packed chunk.

A chunk of answered requests is packed on the event loop (:func:`pack`: ids and timings
as columns, the arrays stacked as bytes: cheap) and turned into JSON lines elsewhere
(:func:`chunk_lines`: the sha256, or the HMAC-SHA256 with ``DIGITS_DECISION_HASH_KEY``, of
each record's canonical float32 rows, the per-row fields and one msgspec ``encode_lines``
call), normally in the encoder process (:mod:`serving.decisions.encoder`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import msgspec
import numpy as np

from serving.decisions.decided import Decided

log = logging.getLogger("serving")
SCHEMA_VERSION = 3
SCHEMA_FILE = Path(__file__).with_name("decision_record.v3.schema.json")
_ENCODER = msgspec.json.Encoder()


class RecordRegistry(msgspec.Struct, frozen=True):
    """The GTO registry version of the model that decided, its stage(s) and commit."""

    version: str
    stage: str | None
    commit: str | None


class RecordModel(msgspec.Struct, array_like=True, frozen=True):
    """The model that decided: the record's ``model_version`` and ``registry``, made once
    per loaded model and shared by the requests it answers."""

    version: str
    registry: RecordRegistry | None


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


InputHash = Literal["hmac-sha256", "sha256"]


class DecisionRecord(
    msgspec.Struct,
    tag_field="schema_version",
    tag=SCHEMA_VERSION,
    omit_defaults=True,
    forbid_unknown_fields=True,
):
    """One answered request (``schema_version`` 3, written first). ``request_id`` is the
    service's own id; ``client_request_id`` the client's ``X-Request-ID``, if it sent a
    usable one. ``input_sha256`` is keyed (``input_hash`` ``hmac-sha256``) when
    ``DIGITS_DECISION_HASH_KEY`` is set. ``inputs`` only with
    ``DIGITS_DECISION_LOG_INPUTS=true``. Older versions: :mod:`serving.decisions.legacy`."""

    request_id: str
    client_request_id: str | None
    time: str
    client_id: str | None
    route: str
    method: str
    status: int
    model_version: str
    registry: RecordRegistry | None
    rows: int
    input_hash: InputHash
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


def _joined(arrays: Sequence[Any]) -> Any:
    """The arrays stacked along their first axis (one array for many records)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


class Packed(msgspec.Struct, array_like=True, frozen=True):
    """A numeric array as its dtype, shape and C-order bytes (no pickle, no object arrays)."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes

    @classmethod
    def of(cls, array: Any, rows: int) -> Packed:
        array = np.ascontiguousarray(array)
        if array.dtype.hasobject or array.ndim == 0 or len(array) != rows:
            raise ValueError(f"not a numeric array of {rows} rows: {array.dtype} {array.shape}")
        return cls(array.dtype.str, array.shape, array.data)

    def array(self) -> Any:
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype)).reshape(self.shape)


class Chunk(msgspec.Struct, array_like=True, frozen=True):
    """Answered requests in columns: what :func:`pack` hands to the encoder (process)."""

    request_ids: tuple[str, ...]
    client_request_ids: tuple[str | None, ...]
    started: tuple[float, ...]
    clients: tuple[str | None, ...]
    routes: tuple[str, ...]
    methods: tuple[str, ...]
    statuses: tuple[int, ...]
    models: tuple[RecordModel, ...]
    seconds: tuple[float, ...]
    rows: tuple[int, ...]
    samples: Packed  # every record's rows as C-contiguous little-endian float32, stacked
    labels: Packed
    probabilities: Packed
    ood: Packed
    ood_score: Packed


_PACKER = msgspec.msgpack.Encoder()
_UNPACKER = msgspec.msgpack.Decoder(Chunk)


def pack(items: Sequence[Pending]) -> bytes:
    """Answered requests as one msgpack :class:`Chunk` (their arrays stacked, not converted).

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
            samples=Packed.of(samples.reshape(total, -1), total),
            labels=Packed.of(_joined([out.labels for out in outs]), total),
            probabilities=Packed.of(_joined([out.probabilities for out in outs]), total),
            ood=Packed.of(_joined([out.ood for out in outs]), total),
            ood_score=Packed.of(_joined([out.ood_score for out in outs]), total),
        )
    )


def _input_hash(key: bytes | None) -> tuple[InputHash, Callable[[Any], str]]:
    """The fingerprint of a record's canonical input bytes: HMAC-SHA256 with ``key``, else
    a plain sha256 (linkable, and guessable for small inputs: no secret goes into it)."""
    if key:
        return "hmac-sha256", lambda data: hmac.digest(key, data, "sha256").hex()
    return "sha256", lambda data: hashlib.sha256(data).hexdigest()


def _records(
    chunk: Chunk, with_inputs: bool, time_of: RecordTime, hash_key: bytes | None
) -> list[DecisionRecord]:
    """The chunk's records: per-row and per-record fields converted for all at once."""
    hash_name, fingerprint = _input_hash(hash_key)
    samples = chunk.samples.array()
    labels = chunk.labels.array().tolist()
    top = chunk.probabilities.array().max(axis=1).tolist()
    ood = chunk.ood.array().tolist()
    scores = chunk.ood_score.array().tolist()
    times = time_of(chunk.started)
    latencies = latency_ms(chunk.seconds)
    records = []
    start = 0
    for index, n in enumerate(chunk.rows):
        stop = start + n
        rows = samples[start:stop]
        model = chunk.models[index]
        records.append(
            DecisionRecord(  # positional, in field order: cheaper than keywords
                chunk.request_ids[index],
                chunk.client_request_ids[index],
                times[index],
                chunk.clients[index],
                chunk.routes[index],
                chunk.methods[index],
                chunk.statuses[index],
                model.version,
                model.registry,
                n,
                hash_name,
                fingerprint(rows.data),
                labels[start:stop],
                top[start:stop],
                ood[start:stop],
                scores[start:stop],
                latencies[index],
                rows.tolist() if with_inputs else None,
            )
        )
        start = stop
    return records


def chunk_lines(
    frame: bytes, with_inputs: bool, time_of: RecordTime, hash_key: bytes | None = None
) -> tuple[bytes, int]:
    """The JSON lines of a :func:`pack` frame, in order, and how many records were dropped;
    ``input_sha256`` keyed with ``hash_key`` (HMAC-SHA256) when one is given.

    A record that cannot be encoded is dropped alone (logged with its request id)."""
    chunk = _UNPACKER.decode(frame)
    records = _records(chunk, with_inputs, time_of, hash_key)
    try:
        return _ENCODER.encode_lines(records), 0
    except Exception:  # one by one: only the bad record is lost
        lines, dropped = [], 0
        for record in records:
            try:
                lines.append(_ENCODER.encode_lines([record]))
            except Exception:
                dropped += 1
                log.exception("decision record %s could not be encoded; dropped", record.request_id)
        return b"".join(lines), dropped
