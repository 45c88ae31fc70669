"""Reading decision records back: every ``decisions-*.jsonl`` file, rotated ones included,
in any schema version (:class:`DecisionRecord` or an older one of
:mod:`serving.decisions.legacy`).

A line that is not a record (a worker killed mid-write, or a write cut short by a full disk
before the service learned to resume it, leaves a torn line) is skipped, not fatal: it is
noted in ``skipped`` (file, line number, why) and every other record is still read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec

from serving.decisions.legacy import DecisionRecordV1, DecisionRecordV2
from serving.decisions.record import DecisionRecord

AnyRecord = DecisionRecord | DecisionRecordV2 | DecisionRecordV1
_DECODER = msgspec.json.Decoder(AnyRecord)


class QueryError(ValueError):
    """A bad query argument or an unreadable record directory."""


class BadLine(NamedTuple):
    """A line that is not a decision record: where it is and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def records(directory: Path, skipped: list[BadLine] | None = None) -> Iterator[AnyRecord]:
    """Every record in ``directory`` (files in name order, lines in file order); a line that
    is not a record is appended to ``skipped`` and passed over."""
    if not directory.is_dir():
        raise QueryError(f"{directory} is not a directory (DIGITS_DECISION_LOG_DIR)")
    for path in sorted(directory.glob("decisions-*.jsonl")):
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield _DECODER.decode(line)
                except msgspec.DecodeError as exc:
                    if skipped is not None:
                        skipped.append(BadLine(path, number, str(exc)))


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


def record_time(record: AnyRecord) -> dt.datetime:
    return dt.datetime.fromisoformat(record.time.replace("Z", "+00:00"))


def client_request_id(record: AnyRecord) -> str | None:
    """The client's own request id (schema version 3; older records did not keep it apart)."""
    return record.client_request_id if isinstance(record, DecisionRecord) else None


def find(directory: Path, request_id: str, skipped: list[BadLine] | None = None) -> list[AnyRecord]:
    return [record for record in records(directory, skipped) if record.request_id == request_id]


def select(
    directory: Path,
    since: dt.datetime | None = None,
    model_version: str | None = None,
    client: str | None = None,
    client_request: str | None = None,
    skipped: list[BadLine] | None = None,
) -> Iterator[AnyRecord]:
    for record in records(directory, skipped):
        if since is not None and record_time(record) < since:
            continue
        if model_version is not None and record.model_version != model_version:
            continue
        if client is not None and record.client_id != client:
            continue
        if client_request is not None and client_request_id(record) != client_request:
            continue
        yield record
