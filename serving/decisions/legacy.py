"""Decision records of older schema versions: read back by the query tool, never written.

An older version is version 3 (:class:`~serving.decisions.record.DecisionRecord`) but for
the fields :data:`OLDER` lists, so what the versions share is declared once and what
differs is stated, version by version. Version 2 (``decision_record.v2.schema.json``) took
the client's ``X-Request-ID`` as its ``request_id`` when one was sent, and its
``input_sha256`` is always a plain sha256: version 3 keeps the client's id apart
(``client_request_id``) and says how the input was hashed (``input_hash``). Version 1
(``decision_record.v1.schema.json``) had ``registry_tag`` (always null) where version 2
has ``registry``. Each struct is pinned to its version's JSON schema by
tests/unit/test_legacy_records.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, cast

import msgspec

from serving.decisions.record import DecisionRecord

__all__ = ["OLDER", "DecisionRecordV1", "DecisionRecordV2", "LegacyRecord"]


class LegacyRecord(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """A record of schema version 1 or 2 (read by name: its fields are :data:`OLDER`'s)."""

    if TYPE_CHECKING:  # what the query tool reads of any version (the fields: _older)
        request_id: str
        model_version: str


class Older(NamedTuple):
    """How an older version differs from version 3."""

    lacks: tuple[str, ...]  # version 3's fields it does not have
    only: tuple[tuple[str, Any], ...] = ()  # (name, type) of its own fields, last


OLDER = {
    2: Older(lacks=("client_request_id", "input_hash")),
    1: Older(
        lacks=("client_request_id", "input_hash", "registry"),
        only=(("registry_tag", str | None),),
    ),
}


def _older(version: int) -> type[LegacyRecord]:
    """The struct of schema ``version``: version 3's fields as :data:`OLDER` says."""
    lacks, only = OLDER[version]
    kept = [
        (field.name, field.type, field.default)
        if field.default is not msgspec.NODEFAULT
        else (field.name, field.type)
        for field in msgspec.structs.fields(DecisionRecord)
        if field.name not in lacks
    ]
    struct = msgspec.defstruct(
        f"DecisionRecordV{version}",
        [*kept, *only],
        bases=(LegacyRecord,),
        module=__name__,
        tag_field="schema_version",
        tag=version,
        kw_only=True,  # its own fields follow version 3's optional inputs
    )
    return cast(type[LegacyRecord], struct)


DecisionRecordV2 = _older(2)
DecisionRecordV1 = _older(1)
