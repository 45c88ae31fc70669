"""How ``quality`` joins feedback to decisions (serving/decisions/quality.py): unmatched
feedback takes its decision's version, prediction and OOD flag; a row labelled twice keeps
its earliest label; feedback without a decision record is counted as unresolved, with the
wrong row count as mismatched; ``--since`` and ``--model-version`` choose the decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serving.decisions.__main__ import main as decisions_main
from tests.decision_files import START, decision, feedback, write_decisions, write_feedback
from tests.decision_files import write_metrics as metrics_file

pytestmark = pytest.mark.unit
DAY = 86_400.0


def quality(capsys: pytest.CaptureFixture[str], directory: Path, *options: str) -> dict[str, Any]:
    metrics = metrics_file(directory.parent / "metrics.json", 0.95)
    argv = ["--dir", str(directory), "quality", "--metrics", str(metrics), "--format", "json"]
    assert decisions_main([*argv, "--min-labels", "1", *options]) == 0
    figures: dict[str, Any] = json.loads(capsys.readouterr().out)
    return figures


def versions(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {version["model_version"]: version for version in figures["versions"]}


def test_unmatched_feedback_is_joined_to_its_decision_by_request_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three-row decisions of two versions; the labels come in two unmatched records per
    decision (null: no label in that record): every row is scored against its own
    decision's prediction and OOD flag, under its decision's version."""
    a = decision("a", [1, 2, 3], [False, True, False], version="v1")
    b = decision("b", [7, 7, 0], [True, False, False], version="v2", started=START + 1)
    write_decisions(tmp_path, [a, b])
    write_feedback(
        tmp_path,
        [
            feedback("a", [1, None, 9]),  # row 0 right, row 2 wrong
            feedback("a", [None, 2, None], at=START + 2 * DAY),  # row 1 right (OOD)
            feedback("b", [7, 1, None]),  # row 0 right (OOD), row 1 wrong
        ],
    )
    found = versions(quality(capsys, tmp_path))
    v1, v2 = found["v1"], found["v2"]
    assert (v1["decisions"], v1["rows"], v1["coverage"]) == (1, 3, 1.0)
    assert (v1["labelled_rows"], v1["correct"]) == (3, 2)
    assert v1["confusions"] == [{"label": 9, "predicted": 3, "rows": 1}]
    assert (v1["ood"]["flagged"]["labelled_rows"], v1["ood"]["flagged"]["correct"]) == (1, 1)
    assert (v1["ood"]["not_flagged"]["labelled_rows"], v1["ood"]["not_flagged"]["correct"]) == (
        2,
        1,
    )
    assert (v2["rows"], v2["coverage"]) == (3, pytest.approx(2 / 3, abs=1e-6))
    assert (v2["labelled_rows"], v2["correct"]) == (2, 1)
    assert v2["confusions"] == [{"label": 1, "predicted": 7, "rows": 1}]
    assert [(c["label"], c["labelled_rows"], c["correct"]) for c in v2["per_class"]] == [
        (1, 1, 0),
        (7, 1, 1),
    ]


def test_a_row_labelled_twice_keeps_its_earliest_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two replicas kept the same unmatched feedback, a third a later different label, in
    files whose name order is not their time order: the earliest label counts, once."""
    item = decision("a", [4, 5])
    write_decisions(tmp_path, [item])
    write_feedback(tmp_path, [feedback("a", [8, 5], at=START + 3 * DAY)], "feedback-a-1-0000.jsonl")
    write_feedback(tmp_path, [feedback("a", [4, None], at=START + DAY)], "feedback-b-1-0000.jsonl")
    write_feedback(tmp_path, [feedback("a", [4, None], at=START + DAY)], "feedback-c-1-0000.jsonl")
    figures = quality(capsys, tmp_path)
    (version,) = figures["versions"]
    # row 0: the label 4 of the day-1 records (right), not the later 8; row 1: the only label
    assert (version["labelled_rows"], version["correct"]) == (2, 2)
    assert figures["feedback"]["records"] == 3
    assert figures["feedback"]["labelled_rows"] == 2
    assert figures["feedback"]["duplicate_rows"] == 2


def test_feedback_without_its_decision_is_counted_never_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unmatched feedback on an unknown request id is unresolved; unmatched feedback with
    another row count than its decision is mismatched; matched feedback whose decision
    record is elsewhere (another replica's volume) is scored from what it carries."""
    here = decision("here", [1])
    elsewhere = decision("elsewhere", [2, 3], version="v9")
    write_decisions(tmp_path, [here])
    write_feedback(
        tmp_path,
        [
            feedback("here", [1]),
            feedback("nowhere", [3, 4, None]),
            feedback("nowhere-either", [5]),
            feedback("here", [1, 2], feedback_id="too-many"),
            feedback("elsewhere", [2, 2], elsewhere),
        ],
    )
    figures = quality(capsys, tmp_path)
    assert figures["feedback"]["unresolved"] == {"feedback": 2, "rows": 3}
    assert figures["feedback"]["mismatched"] == {"feedback": 1, "rows": 1}  # row 0 taken
    assert figures["feedback"]["labelled_rows"] == 7
    found = versions(figures)
    assert sorted(found) == ["v1", "v9"]
    assert (found["v1"]["labelled_rows"], found["v1"]["correct"]) == (1, 1)
    v9 = found["v9"]
    assert (v9["decisions"], v9["rows"], v9["coverage"]) == (0, 0, None)
    assert (v9["labelled_rows"], v9["correct"]) == (2, 1)


def test_since_and_model_version_choose_the_decisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = [decision(f"old{i}", [i], version="v1", started=START) for i in range(4)]
    new = [decision(f"new{i}", [i], version="v1", started=START + 10 * DAY) for i in range(3)]
    other = [decision("other", [6], version="v2", started=START + 10 * DAY)]
    write_decisions(tmp_path, [*old, *new, *other])
    late = START + 11 * DAY
    labels = [
        *(feedback(item.request_id, [0]) for item in old),  # day 1: 1 right of 4
        *(feedback(item.request_id, [int(item.outcome.labels[0])], at=late) for item in new),
        feedback("other", [6], at=late),
        feedback("gone", [1]),  # unresolved, day 1
    ]
    write_feedback(tmp_path, labels)
    everything = versions(quality(capsys, tmp_path))
    assert (everything["v1"]["decisions"], everything["v1"]["correct"]) == (7, 4)
    since = "2025-12-05T00:00:00Z"  # after the old decisions and the day-1 feedback
    recent = quality(capsys, tmp_path, "--since", since)
    assert recent["since"] == "2025-12-05T00:00:00+00:00"
    found = versions(recent)
    assert sorted(found) == ["v1", "v2"]
    v1 = found["v1"]
    assert (v1["decisions"], v1["rows"], v1["coverage"]) == (3, 3, 1.0)
    assert (v1["labelled_rows"], v1["correct"]) == (3, 3)
    assert recent["feedback"]["records"] == 4
    assert recent["feedback"]["unresolved"] == {"feedback": 0, "rows": 0}
    only = quality(capsys, tmp_path, "--model-version", "v2")
    assert only["model_version"] == "v2"
    assert [(v["model_version"], v["decisions"]) for v in only["versions"]] == [("v2", 1)]
    assert only["feedback"]["unresolved"] == {"feedback": 1, "rows": 1}  # of any version
    assert quality(capsys, tmp_path, "--model-version", "v3")["versions"] == []
