"""The decision record (schema version 3), its input fingerprint, and the packed chunk.

A chunk of answered requests is packed on the event loop
(:func:`serving.decisions.packing.pack`: ids and timings as columns, the arrays stacked as
bytes: cheap) and turned into JSON lines here (:func:`chunk_lines`: the sha256, or the
HMAC-SHA256 with ``DIGITS_DECISION_HASH_KEY``, of each record's canonical float32 rows, the
per-row fields and one msgspec ``encode_lines`` call), normally in the encoder process
(:mod:`serving.decisions.encoder`). This module needs the standard library and msgspec
only, not numpy: the encoder process imports it, one per guarded worker, and numpy alone
would double its memory (``tests/unit/test_decision_encoder.py`` keeps numpy out).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

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
        texts = []
        for stamp in epochs:
            second = math.floor(stamp)
            micros = round((stamp - second) * 1e6)  # as datetime rounds: half to even
            if micros >= 1_000_000:
                second += 1
            if second != self._second:
                self._second, self._prefix = second, utc_time(second)[:-5]  # without ".000Z"
            texts.append(f"{self._prefix}.{micros % 1_000_000 // 1000:03d}Z")
        return texts


def latency_ms(seconds: Sequence[float]) -> list[float]:
    """Latencies in milliseconds, rounded to whole microseconds (half to even)."""
    return [round(value * 1e6) / 1000 for value in seconds]


# numpy's dtype codes (Packed.dtype: "<f4", "|b1", ...) as struct's formats.
_FORMATS = {
    "f4": "f", "f8": "d", "i1": "b", "i2": "h", "i4": "i", "i8": "q",
    "u1": "B", "u2": "H", "u4": "I", "u8": "Q", "b1": "?",
}  # fmt: skip


class Packed(msgspec.Struct, array_like=True, frozen=True):
    """A numeric array as its dtype (numpy's code, e.g. ``<f4``), shape and C-order bytes
    (no pickle, no object arrays); made by :func:`serving.decisions.packing.packed`."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes

    def values(self) -> list[Any]:
        """Every element in C order, as Python numbers (what numpy's ``tolist`` gives)."""
        fmt = _FORMATS.get(self.dtype[1:])
        if fmt is None or self.dtype[0] not in "<>|=":
            raise ValueError(f"unsupported packed dtype {self.dtype!r}")
        order = ">" if self.dtype[0] == ">" else "=" if self.dtype[0] == "=" else "<"
        return list(struct.unpack(f"{order}{math.prod(self.shape)}{fmt}", self.data))

    @property
    def width(self) -> int:
        """Elements per row (the product of the shape past its first axis)."""
        return math.prod(self.shape[1:])


class Chunk(msgspec.Struct, array_like=True, frozen=True):
    """Answered requests in columns: what :func:`serving.decisions.packing.pack` hands to the
    encoder (process)."""

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
    top_probability: Packed  # each row's largest probability (numpy's max, in the worker)
    ood: Packed
    ood_score: Packed


_UNPACKER = msgspec.msgpack.Decoder(Chunk)


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
    samples, width = memoryview(chunk.samples.data), chunk.samples.width
    row_bytes = len(samples) // chunk.samples.shape[0] if chunk.samples.shape[0] else 0
    inputs = chunk.samples.values() if with_inputs else []
    labels = chunk.labels.values()
    top = chunk.top_probability.values()
    ood = chunk.ood.values()
    scores = chunk.ood_score.values()
    times = time_of(chunk.started)
    latencies = latency_ms(chunk.seconds)
    records = []
    start = 0
    for index, n in enumerate(chunk.rows):
        stop = start + n
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
                fingerprint(samples[start * row_bytes : stop * row_bytes]),
                labels[start:stop],
                top[start:stop],
                ood[start:stop],
                scores[start:stop],
                latencies[index],
                [inputs[row * width : (row + 1) * width] for row in range(start, stop)]
                if with_inputs
                else None,
            )
        )
        start = stop
    return records


def chunk_lines(
    frame: bytes, with_inputs: bool, time_of: RecordTime, hash_key: bytes | None = None
) -> tuple[bytes, int]:
    """The JSON lines of a :func:`~serving.decisions.packing.pack` frame, in order, and how
    many records were dropped; ``input_sha256`` keyed with ``hash_key`` (HMAC-SHA256) when
    one is given.

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
