"""``python -m serving.decisions quality``: the figures of a synthetic set (300 decisions of
one version, 200 labelled rows of which 40 wrong), recomputed here from the set itself:
accuracy and its Wilson interval, the verdicts, recall per class, the confusions, the OOD
split, the text table and the JSON form."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import norm

from serving.decisions.__main__ import main as decisions_main
from tests.decision_files import decision, feedback, write_decisions, write_feedback, write_metrics

pytestmark = pytest.mark.unit
TEST_RECALL = {label: 0.9 + label / 100 for label in range(10)}


def wilson(correct: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval from its formula (the report's comes from scipy)."""
    z = norm.ppf(0.975)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


class Synthetic:
    """300 one-row decisions (predicted i % 10, every 7th OOD-flagged); the first 200
    labelled, 40 of them (10 in every 50) wrongly predicted (the truth 1 to 4 above the
    prediction, 4 most often); half of the feedback matched by the service, half left for
    the join."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        items = [decision(f"r{i}", [i % 10], [i % 7 == 0]) for i in range(300)]
        write_decisions(directory, items)
        self.rows: list[tuple[int, int, bool]] = []  # (truth, predicted, ood)
        records = []
        for i, item in enumerate(items[:200]):
            offset = 1 + min(i % 7, 3) if i // 10 % 5 == 0 else 0
            truth = (i % 10 + offset) % 10
            records.append(feedback(item.request_id, [truth], item if i % 2 else None))
            self.rows.append((truth, i % 10, i % 7 == 0))
        write_feedback(directory, records)

    def correct(self, rows: list[tuple[int, int, bool]]) -> int:
        return sum(truth == predicted for truth, predicted, _ in rows)


@pytest.fixture
def synthetic(tmp_path: Path) -> Synthetic:
    return Synthetic(tmp_path / "records")


def report(
    capsys: pytest.CaptureFixture[str], directory: Path, metrics: Path, *options: str
) -> tuple[int, str, str]:
    argv = ["--dir", str(directory), "quality", "--metrics", str(metrics), *options]
    status = decisions_main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def as_json(
    capsys: pytest.CaptureFixture[str], directory: Path, metrics: Path, *options: str
) -> dict[str, Any]:
    status, out, err = report(capsys, directory, metrics, "--format", "json", *options)
    assert (status, err) == (0, "")
    figures: dict[str, Any] = json.loads(out)
    return figures


def test_accuracy_its_wilson_interval_and_the_degraded_verdict(
    synthetic: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = write_metrics(tmp_path / "metrics.json", 0.986667, TEST_RECALL)
    figures = as_json(capsys, synthetic.directory, metrics)
    (version,) = figures["versions"]
    correct = synthetic.correct(synthetic.rows)
    assert (correct, len(synthetic.rows)) == (160, 200)
    assert version["model_version"] == "v1"
    assert (version["decisions"], version["rows"]) == (300, 300)
    assert version["coverage"] == pytest.approx(200 / 300, abs=1e-6)
    assert (version["labelled_rows"], version["correct"], version["accuracy"]) == (200, 160, 0.8)
    assert version["accuracy_interval"] == pytest.approx(wilson(160, 200), abs=1e-6)
    assert version["accuracy_interval"][1] < 0.986667
    assert version["test_accuracy"] == 0.986667
    assert version["verdict"] == "degraded"
    assert figures["feedback"] == {
        "records": 200,
        "labelled_rows": 200,
        "duplicate_rows": 0,
        "unresolved": {"feedback": 0, "rows": 0},
        "mismatched": {"feedback": 0, "rows": 0},
    }


@pytest.mark.parametrize(
    ("test_accuracy", "min_labels", "verdict"),
    [
        (0.95, 100, "degraded"),
        (0.84, 100, "consistent"),  # the interval's upper bound (0.8495) reaches it
        (0.70, 200, "consistent"),
        (0.99, 201, "too few labels"),  # 200 labelled rows: no verdict, however low
    ],
)
def test_verdicts(
    synthetic: Synthetic,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    test_accuracy: float,
    min_labels: int,
    verdict: str,
) -> None:
    metrics = write_metrics(tmp_path / "metrics.json", test_accuracy)
    figures = as_json(capsys, synthetic.directory, metrics, "--min-labels", str(min_labels))
    assert figures["min_labels"] == min_labels
    assert [v["verdict"] for v in figures["versions"]] == [verdict]


def test_recall_per_class_confusions_and_the_ood_split(
    synthetic: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = write_metrics(tmp_path / "metrics.json", 0.986667, TEST_RECALL)
    (version,) = as_json(capsys, synthetic.directory, metrics, "--confusions", "4")["versions"]
    by_truth = Counter(truth for truth, _, _ in synthetic.rows)
    right = Counter(truth for truth, predicted, _ in synthetic.rows if truth == predicted)
    assert version["per_class"] == [
        {
            "label": label,
            "labelled_rows": by_truth[label],
            "correct": right[label],
            "recall": pytest.approx(right[label] / by_truth[label], abs=1e-6),
            "test_recall": TEST_RECALL[label],
        }
        for label in sorted(by_truth)
    ]
    assert len({c["recall"] for c in version["per_class"]}) > 1  # the classes do differ
    wrong = Counter((t, p) for t, p, _ in synthetic.rows if t != p)
    ranked = sorted(wrong.items(), key=lambda item: (-item[1], item[0]))[:4]
    assert version["confusions"] == [
        {"label": truth, "predicted": predicted, "rows": n} for (truth, predicted), n in ranked
    ]
    for name, flag in (("flagged", True), ("not_flagged", False)):
        rows = [row for row in synthetic.rows if row[2] is flag]
        split = version["ood"][name]
        assert (split["labelled_rows"], split["correct"]) == (len(rows), synthetic.correct(rows))
        assert split["accuracy"] == pytest.approx(synthetic.correct(rows) / len(rows), abs=1e-6)
        assert split["accuracy_interval"] == pytest.approx(
            wilson(synthetic.correct(rows), len(rows)), abs=1e-6
        )
    assert version["ood"]["flagged"]["accuracy"] != version["ood"]["not_flagged"]["accuracy"]


def test_the_text_table_shows_the_json_figures(
    synthetic: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = write_metrics(tmp_path / "metrics.json", 0.986667, TEST_RECALL)
    figures = as_json(capsys, synthetic.directory, metrics)
    (version,) = figures["versions"]
    status, table, err = report(capsys, synthetic.directory, metrics)
    assert (status, err) == (0, "")
    low, high = version["accuracy_interval"]
    lines = table.splitlines()
    assert lines[3] == "model version v1: degraded"
    assert lines[4].split()[:4] == ["decisions", "rows", "labelled", "rows"]
    assert lines[6].split() == [
        "300", "300", "200", "66.7%", "0.800", f"[{low:.3f},", f"{high:.3f}]", "0.987"
    ]  # fmt: skip
    words = " ".join(table.split())
    for name, key in (("OOD-flagged", "flagged"), ("not flagged", "not_flagged")):
        split = version["ood"][key]
        shown = f"{name} {split['labelled_rows']} {split['correct']} {split['accuracy']:.3f}"
        assert shown in words
    for c in version["per_class"]:
        assert f"{c['label']} {c['labelled_rows']} {c['correct']} {c['recall']:.3f} " in words
    pairs = " ".join(f"{c['label']} {c['predicted']} {c['rows']}" for c in version["confusions"])
    assert f"true predicted rows ------ ----------- ------ {pairs} feedback:" in words
    assert "unresolved (no decision record): 0 feedback, 0 row(s)" in table


def test_the_json_report_is_stable(
    synthetic: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = write_metrics(tmp_path / "metrics.json", 0.986667)
    first = report(capsys, synthetic.directory, metrics, "--format", "json")
    assert report(capsys, synthetic.directory, metrics, "--format", "json") == first
    figures = json.loads(first[1])
    assert list(figures) == [
        "since",
        "model_version",
        "metrics",
        "test_accuracy",
        "min_labels",
        "versions",
        "feedback",
    ]
    assert figures["versions"][0]["per_class"][0]["test_recall"] is None  # not in this file


def test_a_missing_metrics_file_or_bad_option_exits_2(
    synthetic: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = report(capsys, synthetic.directory, tmp_path / "absent.json")
    assert (status, out) == (2, "")
    assert f"--metrics {tmp_path / 'absent.json'}: No such file or directory" in err
    (tmp_path / "other.json").write_text(json.dumps({"macro_f1": 0.9}))
    status, _, err = report(capsys, synthetic.directory, tmp_path / "other.json")
    assert status == 2
    assert "not a metrics file" in err
    with pytest.raises(SystemExit) as usage:
        report(capsys, synthetic.directory, tmp_path / "other.json", "--min-labels", "0")
    assert usage.value.code == 2
