"""Decision records of older schema versions: read back by the query tool, never written.

Version 1 (``decision_record.v1.schema.json``) had ``registry_tag`` (always null) where
version 2 has ``registry``. Version 2 (``decision_record.v2.schema.json``) took the
client's ``X-Request-ID`` as its ``request_id`` when one was sent, and its
``input_sha256`` is always a plain sha256; version 3
(:class:`~serving.decisions.record.DecisionRecord`) keeps the client's id apart
(``client_request_id``) and says how the input was hashed (``input_hash``).
"""

from __future__ import annotations

import msgspec

from serving.decisions.record import RecordRegistry


class _LegacyRecord(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """The fields versions 1 and 2 share (read by name: their order is not the wire's)."""

    request_id: str
    time: str
    client_id: str | None
    route: str
    method: str
    status: int
    model_version: str
    rows: int
    input_sha256: str
    labels: list[int]
    top_probability: list[float]
    ood: list[bool]
    ood_score: list[float]
    latency_ms: float
    inputs: list[list[float]] | None = None


class DecisionRecordV2(_LegacyRecord, tag_field="schema_version", tag=2):
    """A record written before schema version 3: its ``request_id`` may be a client's."""

    registry: RecordRegistry | None


class DecisionRecordV1(_LegacyRecord, tag_field="schema_version", tag=1):
    """A record written before schema version 2: ``registry_tag`` instead of ``registry``;
    it was always null."""

    registry_tag: str | None
