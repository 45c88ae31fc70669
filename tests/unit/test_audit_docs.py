"""audit-docs: templates render every placeholder from pipeline outputs, or fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.audit_docs import TemplateError, file_md5, parse_render_pairs, render
from stages.lib.doc_tables import confusion_table, gates_table, markdown_table
from stages.lib.gates import verdict
from stages.lib.runner import StageError
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_render_substitutes_and_rejects_unknown_placeholders() -> None:
    assert render("acc ${accuracy}", {"accuracy": "0.97"}, "t.md") == "acc 0.97"
    with pytest.raises(TemplateError, match=r"t\.md: unknown placeholder \$\{missing\}"):
        render("x ${missing}", {}, "t.md")
    with pytest.raises(TemplateError, match="malformed placeholder"):
        render("cost $", {}, "t.md")


def _cells(line: str) -> list[str]:
    """The stripped cells of one Markdown table row."""
    assert line.startswith("|")
    assert line.endswith("|")
    return [cell.strip() for cell in line[1:-1].split("|")]


def test_markdown_table_shape() -> None:
    lines = markdown_table(["a", "b"], [["1", "2"], ["0.50", "x"]]).splitlines()
    assert [_cells(line) for line in (lines[0], lines[2], lines[3])] == [
        ["a", "b"],
        ["1", "2"],
        ["0.50", "x"],  # cells stay text: no number parsing
    ]
    assert set(lines[1]) <= {"|", "-", ":"}
    assert len(lines) == 4


def test_confusion_table_counts_and_marks_the_diagonal() -> None:
    rows = [{"actual": 1, "predicted": 1}] * 3 + [{"actual": 1, "predicted": 7}]
    lines = confusion_table(rows).splitlines()
    assert _cells(lines[3]) == ["1", "·", "**3**", "·", "·", "·", "·", "·", "1", "·", "·"]
    assert _cells(lines[2]) == ["0", "**0**", *["·"] * 9]


def test_gates_table_shows_threshold_interval_verdict_and_rationale() -> None:
    record = verdict(
        description="accuracy on the clean test split",
        value=0.98,
        threshold=0.975,
        rationale="Clients need clean digits read right.",
        interval=(0.96, 0.99),
    )
    lines = gates_table({"evaluate.gates": {"clean_accuracy": record}}).splitlines()
    assert _cells(lines[2]) == [
        "`evaluate.gates.clean_accuracy`: accuracy on the clean test split",
        "≥ 0.975",
        "0.9800",
        "0.9600 to 0.9900",
        "pass (marginal)",
        "Clients need clean digits read right.",
    ]


def test_render_pairs_are_validated() -> None:
    assert parse_render_pairs(["a.md:b.md"]) == [(Path("a.md"), Path("b.md"))]
    with pytest.raises(StageError, match="TEMPLATE:OUTPUT"):
        parse_render_pairs(["a.md"])


def test_file_md5_matches_dvc_lock() -> None:
    lock = (REPO_ROOT / "dvc.lock").read_text(encoding="utf-8")
    assert file_md5(REPO_ROOT / "params.yaml") not in lock  # params are recorded by value
    metrics_md5 = file_md5(REPO_ROOT / "reports" / "metrics.json")
    assert f"md5: {metrics_md5}" in lock


def test_every_risk_has_exactly_one_residual_acceptance_decision() -> None:
    import re

    text = (REPO_ROOT / "docs" / "risk_register.md").read_text(encoding="utf-8")
    risks = re.findall(r"^\| (R\d\d) \|", text, flags=re.MULTILINE)
    times = "\u00d7"  # the register writes likelihood x impact with a multiplication sign
    accepted = re.findall(
        rf"^\| `(R\d\d)` \| [LMH] {times} [LMH] \| (accepted|open)", text, re.MULTILINE
    )
    assert risks, "no risks found"
    assert sorted(risk for risk, _ in accepted) == sorted(risks)
    for risk in risks:  # the residual rating is the register's likelihood x impact
        pattern = rf"^\| {risk} \|(?:[^|]*\|){{2}} ([LMH]) \| ([LMH]) \|"
        row = re.search(pattern, text, re.MULTILINE)
        assert row is not None, risk
        assert f"| `{risk}` | {row.group(1)} {times} {row.group(2)} |" in text
