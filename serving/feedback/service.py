"""``POST /feedback``: one true label per row of a recorded decision, by its request id.

What a feedback does, in order:

1. The body ``{"request_id": ID, "labels": [y0, y1, ...]}`` is decoded (400 on a wrong
   shape or type); a label that is not one of the model's classes is 422
   ``label_out_of_range``, and a feedback without any label 422 ``no_labels``.
2. The index resolves the request id (:mod:`serving.feedback.index`). With Redis an
   unknown id is 404 ``unknown_request`` (asked again once after the index's flush
   interval: the deciding worker may not have shared it yet). Without Redis, a worker that
   does not hold the decision keeps the feedback as an ``unmatched`` record (202): it is
   never dropped, and the query tool joins it to its decision record later.
3. A resolved decision needs one label (or null) per row: 422 ``label_count`` otherwise.
   Its rows are claimed: a row labelled differently before is 409 ``feedback_exists``
   (nothing is claimed); the same labels again are idempotent (202, nothing written).
4. The record of the rows this feedback labels first is written and flushed to disk
   before the answer (:mod:`serving.feedback.store`); if it cannot be, the claim is
   released and the answer is 503 ``feedback_not_stored``: send it again.
5. ``model_feedback_rows_total{model_version, outcome}`` counts the new rows, and the
   answer carries the running accuracy of that model version (``scope`` ``service`` with
   Redis, where every worker and replica adds to it; ``worker`` without).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, NamedTuple, NoReturn

import msgspec

from serving.decisions.record import utc_time
from serving.feedback.index import (
    FLUSH_SECONDS,
    Decided,
    FeedbackIndex,
    IndexUnavailableError,
    MemoryIndex,
    RedisIndex,
)
from serving.feedback.record import FeedbackRecord
from serving.feedback.store import FeedbackLog, FeedbackNotStoredError
from serving.http.msgspec_text import split_location
from serving.inference.inputs import ClientError
from serving.monitoring.feedback_metrics import FeedbackMetrics
from serving.settings import Settings

MAX_LABELS = 100_000  # above any DIGITS_MAX_ROWS


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /feedback``."""

    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    # JSON Schema's integer: 7 and 7.0 alike (whole numbers written as floats are taken).
    labels: Annotated[list[int | float | None], msgspec.Meta(min_length=1, max_length=MAX_LABELS)]


class Labels(NamedTuple):
    """A decoded feedback: the request id and one whole-number label (or None) per row."""

    request_id: str
    labels: list[int | None]


class LiveAccuracy(msgspec.Struct):
    """Labelled rows of a model version so far, and the share its labels got right."""

    model_version: str
    labelled_rows: int
    correct_rows: int
    accuracy: float
    scope: str  # "service" (Redis: every worker and replica) or "worker"


class FeedbackAnswer(msgspec.Struct):
    """The 202 answer of ``POST /feedback``."""

    request_id: str
    feedback_id: str
    matched: bool
    model_version: str | None
    matched_rows: int  # labelled rows of this feedback resolved to the decision
    new_rows: int  # rows this feedback labelled first (recorded)
    repeated_rows: int  # rows labelled the same before (idempotent, not recorded again)
    live_accuracy: LiveAccuracy | None


_DECODER = msgspec.json.Decoder(FeedbackRequest)


def decode_feedback(body: bytes) -> tuple[str, list[int | None]]:
    """The request id and the labels (whole numbers) of a feedback body, or a 400."""
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        message, location = split_location(str(exc))
        raise ClientError(400, "invalid_body", message, location or "body") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ClientError(400, "malformed_json", f"Request body is not valid JSON: {exc}") from None
    labels: list[int | None] = []
    for row, label in enumerate(request.labels):
        if isinstance(label, float):
            if not label.is_integer():
                where = f"labels[{row}]"
                raise ClientError(
                    400, "invalid_body", f"{where} = {label} is not an integer", where
                )
            label = int(label)
        labels.append(label)
    return request.request_id, labels


class Feedback:
    """Feedback of one worker: the index, the record log and the metrics."""

    def __init__(self, index: FeedbackIndex, log: FeedbackLog, metrics: FeedbackMetrics) -> None:
        self.index, self.log, self.metrics = index, log, metrics

    def refuse(
        self, status: int, reason: str, message: str, location: str | None = None
    ) -> NoReturn:
        self.metrics.rejected.labels(reason).inc()
        raise ClientError(status, reason, message, location)

    async def submit(
        self, body: bytes, classes: list[int], feedback_id: str, client_id: str | None, now: float
    ) -> FeedbackAnswer:
        """Take one feedback (see the module doc); ``classes``: the served model's."""
        try:
            request_id, labels = decode_feedback(body)
        except ClientError:
            self.metrics.rejected.labels("invalid_body").inc()
            raise
        known = frozenset(classes)
        bad = next((row for row, y in enumerate(labels) if y is not None and y not in known), None)
        if bad is not None:
            self.refuse(
                422,
                "label_out_of_range",
                f"labels[{bad}] = {labels[bad]} is not a class of the model "
                f"({', '.join(map(str, classes))})",
                f"labels[{bad}]",
            )
        if all(y is None for y in labels):
            self.refuse(422, "no_labels", "labels holds no label (every row is null)", "labels")
        request = Labels(request_id, labels)
        decided = await self._resolve(request_id)
        if decided is None:
            return await self._unmatched(request, feedback_id, client_id, now)
        return await self._matched(request, decided, feedback_id, client_id, now)

    async def _resolve(self, request_id: str) -> Decided | None:
        try:
            decided = await self.index.resolve(request_id)
            if decided is None and self.index.shared:
                await asyncio.sleep(2 * FLUSH_SECONDS)  # the deciding worker's next flush
                decided = await self.index.resolve(request_id)
        except IndexUnavailableError as exc:
            self._unavailable(exc)
        if decided is None and self.index.shared:
            self.refuse(
                404,
                "unknown_request",
                f"no decision with request id {request_id!r} is known (feedback is taken "
                "for the request ids of recorded decisions, within DIGITS_FEEDBACK_WINDOW)",
                "request_id",
            )
        return decided

    def _unavailable(self, exc: BaseException) -> NoReturn:
        self.refuse(503, "index_unavailable", f"the feedback index (Redis) did not answer: {exc}")

    async def _unmatched(
        self, request: Labels, feedback_id: str, client_id: str | None, now: float
    ) -> FeedbackAnswer:
        record = FeedbackRecord(
            feedback_id, request.request_id, utc_time(now), client_id, request.labels,
            False, None, None, None,
        )  # fmt: skip
        await self._write(record)
        labelled = sum(y is not None for y in request.labels)
        self.metrics.unmatched_rows.inc(labelled)
        return FeedbackAnswer(request.request_id, feedback_id, False, None, 0, labelled, 0, None)

    async def _matched(
        self,
        request: Labels,
        decided: Decided,
        feedback_id: str,
        client_id: str | None,
        now: float,
    ) -> FeedbackAnswer:
        labels, predicted = request.labels, decided.predicted
        if len(labels) != len(predicted):
            self.refuse(
                422,
                "label_count",
                f"{len(labels)} labels for a decision of {len(predicted)} rows: give one "
                "label (or null) per row, in the order of the request",
                "labels",
            )
        try:
            claim = await self.index.claim(request.request_id, labels)
        except IndexUnavailableError as exc:
            self._unavailable(exc)
        if claim.conflicts:
            rows = ", ".join(map(str, claim.conflicts[:10]))
            self.refuse(
                409,
                "feedback_exists",
                f"rows {rows} of request {request.request_id!r} already have a different "
                "label: each row takes one answer",
                "labels",
            )
        new = set(claim.new)
        if new:
            added = [y if row in new else None for row, y in enumerate(labels)]
            record = FeedbackRecord(
                feedback_id, request.request_id, utc_time(now), client_id, added, True,
                decided.model_version, list(predicted), list(decided.ood),
            )  # fmt: skip
            try:
                await self._write(record)
            except ClientError:
                await self.index.release(request.request_id, claim.new)
                raise
        correct = sum(labels[row] == predicted[row] for row in new)
        self.metrics.observe(decided.model_version, correct, len(new) - correct)
        accuracy = await self._tally(decided.model_version, len(new), correct)
        matched = len(new) + len(claim.repeated)
        return FeedbackAnswer(
            request.request_id, feedback_id, True, decided.model_version, matched, len(new),
            len(claim.repeated), accuracy,
        )  # fmt: skip

    async def _write(self, record: FeedbackRecord) -> None:
        try:
            await self.log.write(record)
        except FeedbackNotStoredError as exc:
            self.refuse(503, "feedback_not_stored", f"{exc}; nothing was recorded: send it again")

    async def _tally(self, version: str, new: int, correct: int) -> LiveAccuracy | None:
        """The running accuracy of ``version`` with this feedback's rows; None if Redis did
        not answer (the record is written and counted all the same)."""
        try:
            labelled, right = await self.index.tally(version, new, correct)
        except IndexUnavailableError:
            return None
        return _accuracy(version, labelled, right, "service" if self.index.shared else "worker")

    def close(self) -> None:
        self.index.close()
        self.log.close()


def build_feedback(settings: Settings, metrics: FeedbackMetrics) -> Feedback:
    """The feedback of one worker, as ``DIGITS_FEEDBACK_*`` configure it (Redis: the rate
    limits' server, ``DIGITS_RATE_LIMIT_REDIS_URL``, when set)."""
    window = settings.feedback_window_seconds
    url = settings.rate_limit_redis_url
    index: FeedbackIndex = (
        RedisIndex(url, window) if url else MemoryIndex(window, settings.feedback_index_size)
    )
    directory = Path(settings.decision_log_dir or ".")
    return Feedback(index, FeedbackLog(directory, settings.decision_log_max_bytes), metrics)


def _accuracy(version: str, labelled: int, correct: int, scope: str) -> LiveAccuracy:
    share = round(correct / labelled, 6) if labelled else 0.0
    return LiveAccuracy(version, labelled, correct, share, scope)
