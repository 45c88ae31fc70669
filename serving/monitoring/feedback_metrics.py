"""Live quality from ground-truth feedback (``POST /feedback``, :mod:`serving.feedback`).

``model_feedback_rows_total{model_version, outcome}`` counts labelled rows matched to
their decision, ``correct`` or ``incorrect``: deploy/prometheus/rules turns it into live
accuracy per model version (recording rule) and alerts when it stays below the
clean-accuracy gate. Rows that could not be matched, and refused feedback, have their own
counters: neither is silently lost.
"""

from __future__ import annotations

from typing import Any

from serving.monitoring.family import unregistered

OUTCOMES = ("correct", "incorrect")
REJECTIONS = (
    "invalid_body",  # malformed JSON, wrong shape or type (400)
    "label_out_of_range",  # 422
    "no_labels",  # 422
    "unknown_request",  # 404
    "label_count",  # 422
    "feedback_exists",  # 409
    "feedback_not_stored",  # 503
    "index_unavailable",  # 503
)


class FeedbackMetrics:
    def __init__(self, counter_kind: Any) -> None:
        counter = unregistered(counter_kind)
        self.rows = counter(
            "model_feedback_rows_total",
            "Labelled rows matched to the decision they label, by the deciding model version "
            "and whether its label was correct.",
            ["model_version", "outcome"],
        )
        self.unmatched_rows = counter(
            "model_feedback_unmatched_rows_total",
            "Labelled rows of feedback the index could not resolve (kept as unmatched records, "
            "joined to their decisions by the query tool).",
        )
        self.rejected = counter(
            "model_feedback_rejected_total",
            "Feedback requests refused, by reason.",
            ["reason"],
        )
        for reason in REJECTIONS:
            self.rejected.labels(reason)

    def serve(self, model_version: str) -> None:
        """The served version's series exist from the start, at 0: the live-accuracy rule
        and its alert select them before any feedback arrives (an absent series reads as
        no data, not as no labels yet)."""
        for outcome in OUTCOMES:
            self.rows.labels(model_version, outcome)

    def observe(self, model_version: str, correct: int, incorrect: int) -> None:
        if correct:
            self.rows.labels(model_version, "correct").inc(correct)
        if incorrect:
            self.rows.labels(model_version, "incorrect").inc(incorrect)
