"""The quality report (:mod:`serving.decisions.quality`) as text tables for a person: one
block per model version (its figures, the OOD split, recall per class, the most frequent
confusions), then what happened to the feedback. The JSON form is the machine's."""

from __future__ import annotations

from typing import Any

from serving.decisions.catalog import tool
from serving.decisions.quality import Quality, Share, VersionQuality


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(ci95: tuple[float, float] | None) -> str:
    return "-" if ci95 is None else f"[{ci95[0]:.3f}, {ci95[1]:.3f}]"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    tabulate: Any = tool("tabulate")
    text: str = tabulate.tabulate(rows, headers, tablefmt="simple", disable_numparse=True)
    return "\n".join("  " + line for line in text.splitlines())


def _share_row(name: str, share: Share) -> list[Any]:
    return [
        name,
        share.labelled_rows,
        share.correct,
        _number(share.accuracy),
        _interval(share.accuracy_interval),
    ]


def version_block(version: VersionQuality) -> str:
    parts = [
        f"model version {version.model_version}: {version.verdict}",
        _table(
            [
                [
                    version.decisions,
                    version.rows,
                    version.labelled_rows,
                    _percent(version.coverage),
                    _number(version.accuracy),
                    _interval(version.accuracy_interval),
                    _number(version.test_accuracy),
                ]
            ],
            [
                "decisions",
                "rows",
                "labelled rows",
                "coverage",
                "accuracy",
                "95% Wilson",
                "test split",
            ],
        ),
        "",
        _table(
            [
                _share_row("OOD-flagged", version.ood.flagged),
                _share_row("not flagged", version.ood.not_flagged),
            ],
            ["subset", "labelled", "correct", "accuracy", "95% Wilson"],
        ),
    ]
    if version.per_class:
        classes = [
            [c.label, c.labelled_rows, c.correct, _number(c.recall), _number(c.test_recall)]
            for c in version.per_class
        ]
        parts += ["", _table(classes, ["class", "labelled", "correct", "recall", "test recall"])]
    if version.confusions:
        pairs = [[c.label, c.predicted, c.rows] for c in version.confusions]
        parts += [
            "",
            "  most frequent confusions (true label -> predicted)",
            _table(pairs, ["true", "predicted", "rows"]),
        ]
    return "\n".join(parts)


def render(report: Quality) -> str:
    """The report as text (ends with a newline)."""
    scope = "all model versions" if report.model_version is None else report.model_version
    head = [
        f"decision quality: {scope}, decisions since {report.since or 'the first record'}",
        f"test split ({report.metrics}): accuracy {report.test_accuracy:.3f}; a verdict needs "
        f"at least {report.min_labels} labelled rows",
    ]
    blocks = [version_block(version) for version in report.versions]
    if not blocks:
        blocks = ["no decision or labelled row in this window"]
    counts = report.feedback
    tail = "\n".join(
        [
            f"feedback: {counts.records} record(s), {counts.labelled_rows} labelled row(s)",
            f"  duplicates ignored (the earliest label kept): {counts.duplicate_rows} row(s)",
            f"  unresolved (no decision record): {counts.unresolved.feedback} feedback, "
            f"{counts.unresolved.rows} row(s)",
            f"  mismatched (not the decision's row count): {counts.mismatched.feedback} "
            f"feedback, {counts.mismatched.rows} row(s)",
        ]
    )
    return "\n\n".join(["\n".join(head), *blocks, tail]) + "\n"
