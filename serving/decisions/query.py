"""Reading decision records back: every ``decisions-*.jsonl`` file, rotated ones included,
in either schema version (:class:`DecisionRecord` or the older :class:`DecisionRecordV1`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import msgspec

from serving.decisions.record import DecisionRecord, DecisionRecordV1

AnyRecord = DecisionRecord | DecisionRecordV1
_DECODER = msgspec.json.Decoder(AnyRecord)


class QueryError(ValueError):
    """A bad query argument or an unreadable record."""


def records(directory: Path) -> Iterator[AnyRecord]:
    """Every record in ``directory`` (files in name order, lines in file order)."""
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
                    # A worker killed mid-write can leave one partial last line.
                    raise QueryError(f"{path}:{number}: {exc}") from None


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


def find(directory: Path, request_id: str) -> list[AnyRecord]:
    return [record for record in records(directory) if record.request_id == request_id]


def select(
    directory: Path,
    since: dt.datetime | None = None,
    model_version: str | None = None,
    client: str | None = None,
) -> Iterator[AnyRecord]:
    for record in records(directory):
        if since is not None and record_time(record) < since:
            continue
        if model_version is not None and record.model_version != model_version:
            continue
        if client is not None and record.client_id != client:
            continue
        yield record
