"""The feedback record (schema version 1): one JSON line per accepted ``POST /feedback``.

Written beside the decision records, as ``feedback-<host>-<pid>-<seq>.jsonl`` in
``DIGITS_DECISION_LOG_DIR``, with the same rotation and shutdown guarantee; a feedback
record never rewrites a decision record. ``labels`` holds one entry per row of the
decision: the true label this feedback adds, or null (truth unknown, or the row was already
labelled by an earlier feedback). A record is written only when it adds a label.

``matched``: the service resolved ``request_id`` to its decision when the feedback arrived
(the feedback index, :mod:`serving.feedback.index`); then ``model_version``, ``predicted``
and ``ood`` are the decision's. Unmatched feedback (no Redis, and a decision the worker's
own index does not hold) is kept with those three null, and joined to the decision records
by ``request_id`` later (``python -m serving.decisions quality``).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("feedback_record.v1.schema.json")
FILE_PREFIX = "feedback"


class FeedbackRecord(
    msgspec.Struct,
    tag_field="schema_version",
    tag=SCHEMA_VERSION,
    forbid_unknown_fields=True,
):
    """One accepted feedback (see the module doc)."""

    feedback_id: str  # the service's id of the POST /feedback request (its X-Request-ID)
    request_id: str  # the decision it labels
    time: str  # UTC, when the feedback arrived
    client_id: str | None  # who sent it (never the key)
    labels: list[int | None]
    matched: bool
    model_version: str | None
    predicted: list[int] | None
    ood: list[bool] | None
