"""Live quality per model version: the decision records joined with their feedback, in SQL.

A feedback record (:mod:`serving.feedback.record`) labels rows of one decision: ``labels``
has one entry per decision row, null where that record adds no label. The rules:

- A row labelled by several records (unmatched feedback can be written by more than one
  replica) keeps its earliest label by feedback time (then file, line); the others are
  counted as ``duplicate_rows``.
- Matched feedback carries the decision's model version, predicted labels and OOD flags.
  Unmatched feedback is joined to the decision records by ``request_id``; if no record
  has that id it is ``unresolved``, and if the decision has another row count than the
  feedback has labels it is ``mismatched``: both are counted, never scored, never dropped
  silently. A request id recorded more than once counts once (its earliest record).
- ``--since`` keeps decisions made since then, with the labels they got whenever they came
  (a labelled row whose decision record is absent is dated by its feedback);
  ``--model-version`` keeps one version. The feedback counts (records, duplicates,
  unresolved, mismatched) are of the feedback that arrived since then, of any version.

Per version: decisions and rows (decision records), labelled rows and the coverage (the
labelled share of the recorded rows), accuracy with its 95 % Wilson interval (scipy) next
to the test-split accuracy of ``reports/metrics.json``, and a verdict: ``too few labels``
under ``min_labels`` labelled rows, ``degraded`` when the interval's upper bound is below the
test-split accuracy, else ``consistent``. Then recall per true class (beside the test
split's), the most frequent confusions, and accuracy of OOD-flagged and other rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import msgspec

from serving.decisions.catalog import Catalog, QueryError, tool

# A verdict needs this many labelled rows: at 80 % accuracy the 95 % Wilson interval of 100
# rows is about +-8 points wide, of 50 rows +-11: too wide to tell a decline from noise.
MIN_LABELS = 100
TOP_CONFUSIONS = 5
TOO_FEW, DEGRADED, CONSISTENT = "too few labels", "degraded", "consistent"

# Every labelled row once (its earliest label), resolved to the decision it labels.
_LABELLED = """
CREATE OR REPLACE VIEW decided AS
SELECT * FROM decisions
QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY time, file, line) = 1;

CREATE OR REPLACE TABLE labelled AS
WITH given AS (
    SELECT
        feedback_id, request_id, time, file, line, matched, model_version, predicted, ood,
        len(labels) AS n_labels,
        unnest(labels) AS label,
        generate_subscripts(labels, 1) AS row
    FROM feedback
), kept AS (
    SELECT *, count(*) OVER (PARTITION BY request_id, row) - 1 AS duplicates
    FROM given
    WHERE label IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY request_id, row ORDER BY time, file, line) = 1
)
SELECT
    k.feedback_id,
    k.row,
    k.label,
    k.duplicates,
    k.time AS feedback_time,
    coalesce(d.time, k.time) AS time,
    d.request_id IS NOT NULL AS recorded,
    CASE WHEN k.matched THEN k.model_version ELSE d.model_version END AS model_version,
    CASE WHEN k.matched THEN k.predicted[k.row] ELSE d.labels[k.row] END AS predicted,
    CASE WHEN k.matched THEN k.ood[k.row] ELSE d.ood[k.row] END AS ood,
    CASE
        WHEN k.matched THEN 'scored'
        WHEN d.request_id IS NULL THEN 'unresolved'
        WHEN d.rows <> k.n_labels THEN 'mismatched'
        ELSE 'scored'
    END AS status
FROM kept AS k LEFT JOIN decided AS d ON k.request_id = d.request_id
"""
_SCORED = """
CREATE OR REPLACE TABLE scored AS
SELECT * FROM labelled
WHERE status = 'scored'
  AND ($since IS NULL OR time >= $since)
  AND ($model_version IS NULL OR model_version = $model_version)
"""
_DECIDED = """
SELECT model_version, count(*), sum(rows)
FROM decided
WHERE ($since IS NULL OR time >= $since)
  AND ($model_version IS NULL OR model_version = $model_version)
GROUP BY model_version
"""
_TOTALS = """
SELECT model_version, count(*), count_if(label = predicted), count_if(recorded)
FROM scored GROUP BY model_version
"""
_PER_CLASS = """
SELECT model_version, label, count(*), count_if(label = predicted)
FROM scored GROUP BY model_version, label ORDER BY model_version, label
"""
_CONFUSIONS = """
SELECT model_version, label, predicted, count(*) AS n
FROM scored WHERE label <> predicted
GROUP BY model_version, label, predicted
QUALIFY row_number() OVER (PARTITION BY model_version ORDER BY n DESC, label, predicted) <= $top
ORDER BY model_version, n DESC, label, predicted
"""
_OOD = """
SELECT model_version, coalesce(ood, false), count(*), count_if(label = predicted)
FROM scored GROUP BY ALL
"""
_FEEDBACK = """
SELECT
    (SELECT count(*) FROM feedback WHERE $since IS NULL OR time >= $since),
    count(*), coalesce(sum(duplicates), 0),
    count(DISTINCT feedback_id) FILTER (status = 'unresolved'), count_if(status = 'unresolved'),
    count(DISTINCT feedback_id) FILTER (status = 'mismatched'), count_if(status = 'mismatched')
FROM labelled WHERE $since IS NULL OR feedback_time >= $since
"""


class Share(msgspec.Struct):
    """The labelled rows of a subset, how many were predicted right, that share and its
    95 % Wilson interval (null without rows)."""

    labelled_rows: int
    correct: int
    accuracy: float | None
    accuracy_interval: tuple[float, float] | None


class ClassRecall(msgspec.Struct):
    label: int
    labelled_rows: int
    correct: int
    recall: float
    test_recall: float | None


class Confusion(msgspec.Struct):
    label: int
    predicted: int
    rows: int


class OodSplit(msgspec.Struct):
    flagged: Share
    not_flagged: Share


class VersionQuality(msgspec.Struct):
    """One model version: its decisions, then its labelled rows (as :class:`Share`)."""

    model_version: str
    decisions: int
    rows: int
    labelled_rows: int
    coverage: float | None
    correct: int
    accuracy: float | None
    accuracy_interval: tuple[float, float] | None
    test_accuracy: float
    verdict: str
    per_class: list[ClassRecall]
    confusions: list[Confusion]
    ood: OodSplit


class Unscored(msgspec.Struct):
    feedback: int
    rows: int


class FeedbackCounts(msgspec.Struct):
    records: int
    labelled_rows: int
    duplicate_rows: int
    unresolved: Unscored
    mismatched: Unscored


class Quality(msgspec.Struct):
    since: str | None
    model_version: str | None
    metrics: str
    test_accuracy: float
    min_labels: int
    versions: list[VersionQuality]
    feedback: FeedbackCounts


class Reference(msgspec.Struct):
    """What ``reports/metrics.json`` says of the test split (the keys read here)."""

    accuracy: float
    per_class: dict[str, dict[str, Any]] = {}

    def recall(self, label: int) -> float | None:
        value = self.per_class.get(str(label), {}).get("recall")
        return float(value) if isinstance(value, int | float) else None


def reference(path: Path) -> Reference:
    """The test split's accuracy and per-class recall in the metrics file."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=Reference)
    except OSError as exc:
        raise QueryError(f"--metrics {path}: {exc.strerror} (dvc repro or dvc pull)") from None
    except msgspec.DecodeError as exc:
        raise QueryError(f"--metrics {path}: not a metrics file: {exc}") from None


def share(labelled_rows: int, correct: int) -> Share:
    if not labelled_rows:
        return Share(0, 0, None, None)
    stats: Any = tool("scipy.stats")
    low, high = stats.binomtest(correct, labelled_rows).proportion_ci(0.95, method="wilson")
    return Share(
        labelled_rows, correct, _round(correct / labelled_rows), (_round(low), _round(high))
    )


def verdict(accuracy: Share, test_accuracy: float, min_labels: int) -> str:
    interval = accuracy.accuracy_interval
    if accuracy.labelled_rows < min_labels or interval is None:
        return TOO_FEW
    return DEGRADED if interval[1] < test_accuracy else CONSISTENT


def quality(
    catalog: Catalog,
    metrics: Path,
    since: dt.datetime | None = None,
    model_version: str | None = None,
    min_labels: int = MIN_LABELS,
    top_confusions: int = TOP_CONFUSIONS,
) -> Quality:
    """The quality report of the catalog's records (opened with its feedback files)."""
    test = reference(metrics)
    db = catalog.db
    window = {"since": since, "model_version": model_version}
    db.execute(_LABELLED)
    db.execute(_SCORED, window)

    def rows(sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
        return db.execute(sql, parameters).fetchall()

    decided = {version: (n, int(r or 0)) for version, n, r in rows(_DECIDED, **window)}
    totals = {version: rest for version, *rest in rows(_TOTALS)}
    per_class: dict[str, list[ClassRecall]] = {}
    for version, label, n, correct in rows(_PER_CLASS):
        recall = ClassRecall(label, n, correct, _round(correct / n), test.recall(label))
        per_class.setdefault(version, []).append(recall)
    confusions: dict[str, list[Confusion]] = {}
    for version, label, predicted, n in rows(_CONFUSIONS, top=top_confusions):
        confusions.setdefault(version, []).append(Confusion(label, predicted, n))
    ood = {(version, flag): (n, correct) for version, flag, n, correct in rows(_OOD)}
    versions = []
    for version in sorted(decided.keys() | totals.keys()):
        n_decisions, n_rows = decided.get(version, (0, 0))
        labelled, correct, recorded = totals.get(version, (0, 0, 0))
        accuracy = share(labelled, correct)
        versions.append(
            VersionQuality(
                model_version=version,
                decisions=n_decisions,
                rows=n_rows,
                labelled_rows=labelled,
                coverage=_round(recorded / n_rows) if n_rows else None,
                correct=correct,
                accuracy=accuracy.accuracy,
                accuracy_interval=accuracy.accuracy_interval,
                test_accuracy=test.accuracy,
                verdict=verdict(accuracy, test.accuracy, min_labels),
                per_class=per_class.get(version, []),
                confusions=confusions.get(version, []),
                ood=OodSplit(
                    share(*ood.get((version, True), (0, 0))),
                    share(*ood.get((version, False), (0, 0))),
                ),
            )
        )
    (records, labelled, duplicates, *unscored) = rows(_FEEDBACK, since=since)[0]
    return Quality(
        since=since.isoformat() if since else None,
        model_version=model_version,
        metrics=str(metrics),
        test_accuracy=test.accuracy,
        min_labels=min_labels,
        versions=versions,
        feedback=FeedbackCounts(
            records,
            labelled,
            int(duplicates),
            Unscored(*unscored[:2]),
            Unscored(*unscored[2:]),
        ),
    )


def _round(value: float) -> float:
    """Six decimals, as ``reports/metrics.json`` writes them: a stable JSON report."""
    return round(float(value), 6)


def as_json(report: Quality) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"
