"""audit-docs: templates render every placeholder from pipeline outputs, or fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.audit_docs import (
    TemplateError,
    confusion_table,
    file_md5,
    markdown_table,
    parse_render_pairs,
    render,
)
from stages.runner import StageError
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_render_substitutes_and_rejects_unknown_placeholders() -> None:
    assert render("acc ${accuracy}", {"accuracy": "0.97"}, "t.md") == "acc 0.97"
    with pytest.raises(TemplateError, match=r"t\.md: unknown placeholder \$\{missing\}"):
        render("x ${missing}", {}, "t.md")
    with pytest.raises(TemplateError, match="malformed placeholder"):
        render("cost $", {}, "t.md")


def test_markdown_table_shape() -> None:
    table = markdown_table(["a", "b"], [["1", "2"]])
    assert table.splitlines() == ["| a | b |", "|:---|---:|", "| 1 | 2 |"]


def test_confusion_table_counts_and_marks_the_diagonal() -> None:
    rows = [{"actual": 1, "predicted": 1}] * 3 + [{"actual": 1, "predicted": 7}]
    lines = confusion_table(rows).splitlines()
    assert lines[3] == "| 1 | · | **3** | · | · | · | · | · | 1 | · | · |"


def test_render_pairs_are_validated() -> None:
    assert parse_render_pairs(["a.md:b.md"]) == [(Path("a.md"), Path("b.md"))]
    with pytest.raises(StageError, match="TEMPLATE:OUTPUT"):
        parse_render_pairs(["a.md"])


def test_file_md5_matches_dvc_lock() -> None:
    lock = (REPO_ROOT / "dvc.lock").read_text(encoding="utf-8")
    assert file_md5(REPO_ROOT / "params.yaml") not in lock  # params are recorded by value
    metrics_md5 = file_md5(REPO_ROOT / "reports" / "metrics.json")
    assert f"md5: {metrics_md5}" in lock
