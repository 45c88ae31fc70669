"""Test helper: decision and feedback record files in a directory, as the service writes
them (decision records through the writer's encoding path, feedback records as msgspec
encodes :class:`FeedbackRecord`), and a test split's metrics file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from serving.decisions.decided import Decided
from serving.decisions.packing import Pending
from serving.decisions.record import RecordModel, RecordRegistry, RecordTime, utc_time
from serving.feedback.record import FeedbackRecord
from tests.records import record_lines

START = 1_764_480_000.0  # 2025-11-30T05:20:00Z


def decision(
    request_id: str,
    predicted: Sequence[int],
    ood: Sequence[bool] | None = None,
    version: str = "v1",
    started: float = START,
    client: str | None = "c",
    client_request_id: str | None = None,
    registry: RecordRegistry | None = None,
) -> Pending:
    """An answered request with one row per predicted label."""
    n = len(predicted)
    rows = np.zeros((n, 64), dtype=np.float32)
    flags = np.asarray(ood if ood is not None else [False] * n)
    outcome = Decided(rows, np.asarray(predicted), np.ones((n, 10), np.float32), flags, rows[:, 0])
    return Pending(
        request_id,
        client_request_id,
        started,
        client,
        "/predict",
        "POST",
        200,
        RecordModel(version, registry),
        0.001,
        outcome,
    )


def write_decisions(
    directory: Path, items: Sequence[Pending], name: str = "decisions-host-1-0000.jsonl"
) -> list[bytes]:
    """The records' lines, appended to ``name`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = record_lines(items, False, RecordTime())
    with (directory / name).open("ab") as out:
        out.write(b"".join(lines))
    return lines


def feedback(
    request_id: str,
    labels: Sequence[int | None],
    decided: Pending | None = None,
    at: float = START + 86_400,
    feedback_id: str | None = None,
) -> FeedbackRecord:
    """Feedback on ``request_id``: matched (carrying the decision's version, labels and OOD
    flags) when ``decided`` is given, else unmatched."""
    matched = decided is not None
    return FeedbackRecord(
        feedback_id=feedback_id or f"fb-{request_id}-{at}",
        request_id=request_id,
        time=utc_time(at),
        client_id="labeller",
        labels=list(labels),
        matched=matched,
        model_version=decided.model.version if decided else None,
        predicted=decided.outcome.labels.tolist() if decided else None,
        ood=decided.outcome.ood.tolist() if decided else None,
    )


def write_feedback(
    directory: Path, records: Sequence[FeedbackRecord], name: str = "feedback-host-1-0000.jsonl"
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / name).open("ab") as out:
        out.write(msgspec.json.Encoder().encode_lines(records))


def write_metrics(path: Path, accuracy: float, recall: dict[int, float] | None = None) -> Path:
    """A metrics file with the keys of ``reports/metrics.json`` that quality reads."""
    per_class = {str(label): {"recall": value} for label, value in (recall or {}).items()}
    path.write_text(json.dumps({"accuracy": accuracy, "per_class": per_class}))
    return path
