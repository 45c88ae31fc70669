"""Reading decision records back: every ``decisions-*.jsonl`` file, rotated ones included,
in any schema version (:class:`DecisionRecord` or an older one of
:mod:`serving.decisions.legacy`), through DuckDB (:mod:`serving.decisions.catalog`).

DuckDB finds the records (filters, file and line order); each one found is decoded into
its own msgspec type, so ``show`` and ``list`` print exactly the record's fields. A line
that is not a record (a worker killed mid-write, or a write cut short by a full disk
before the service learned to resume it, leaves a torn line) is skipped, not fatal: it is
in :meth:`Catalog.bad_lines` (file, line number, why) and every other record is still read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import msgspec

from serving.decisions.catalog import RECORD_TYPES, AnyRecord, BadLine, Catalog, QueryError

__all__ = ["AnyRecord", "BadLine", "Catalog", "QueryError", "find", "parse_since", "select"]
_DECODER: msgspec.json.Decoder[AnyRecord] = msgspec.json.Decoder(RECORD_TYPES)
_BATCH = 1000

# The record lines behind the ``decisions`` view's rows that pass every filter given (a
# null parameter is no filter), in file and line order.
_SELECT = """
SELECT l.text
FROM decisions AS d JOIN record_lines AS l USING (file, line)
WHERE ($request_id IS NULL OR d.request_id = $request_id)
  AND ($since IS NULL OR d.time >= $since)
  AND ($model_version IS NULL OR d.model_version = $model_version)
  AND ($client IS NULL OR d.client_id = $client)
  AND ($client_request IS NULL OR d.client_request_id = $client_request)
ORDER BY d.file, d.line
"""


def parse_since(text: str) -> dt.datetime:
    """An ISO 8601 time (UTC if no offset), or a duration back from now: 30m, 2h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"--since {text!r}: expected ISO 8601 or 30m/2h/7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def find(catalog: Catalog, request_id: str) -> list[AnyRecord]:
    """Every record of ``request_id`` (the service's id), in file and line order."""
    return list(_records(catalog, request_id=request_id))


def select(
    catalog: Catalog,
    since: dt.datetime | None = None,
    model_version: str | None = None,
    client: str | None = None,
    client_request: str | None = None,
) -> Iterator[AnyRecord]:
    """The records matching every filter given, in file and line order."""
    return _records(
        catalog,
        since=since,
        model_version=model_version,
        client=client,
        client_request=client_request,
    )


def _records(catalog: Catalog, **filters: str | dt.datetime | None) -> Iterator[AnyRecord]:
    parameters = {
        "request_id": None,
        "since": None,
        "model_version": None,
        "client": None,
        "client_request": None,
        **filters,
    }
    found = catalog.db.execute(_SELECT, parameters)
    while batch := found.fetchmany(_BATCH):
        for (text,) in batch:
            yield _DECODER.decode(text)
