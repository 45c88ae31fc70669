"""Markdown tables for the audit documents, built with tabulate from pipeline outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stages.lib.gates import SELECTION_CRITERIA, status

N_CLASSES = 10


def fmt(value: float, digits: int = 4) -> str:
    """A fixed-precision number for tables."""
    return f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]], align: str = "right") -> str:
    """A GitHub Markdown table (tabulate); the first column is left-aligned, cells kept as text."""
    from tabulate import tabulate

    table: str = tabulate(
        rows,
        header,
        tablefmt="github",
        disable_numparse=True,
        colalign=("left", *([align] * (len(header) - 1))),
    )
    return table


def confusion_table(rows: list[dict[str, int]]) -> str:
    """10x10 counts: rows are actual classes, columns predicted classes."""
    matrix = np.zeros((N_CLASSES, N_CLASSES), dtype=int)
    for row in rows:
        matrix[row["actual"], row["predicted"]] += 1
    header = ["actual \\ predicted", *(str(c) for c in range(N_CLASSES))]
    body = [
        [
            str(a),
            *(f"**{n}**" if a == p else (str(n) if n else "·") for p, n in enumerate(matrix[a])),
        ]
        for a in range(N_CLASSES)
    ]
    return markdown_table(header, body, align="center")


def per_class_table(metrics: dict[str, Any]) -> str:
    """Precision, recall, F1 and support per class."""
    body = [
        [label, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), str(m["support"])]
        for label, m in sorted(metrics["per_class"].items(), key=lambda item: int(item[0]))
    ]
    return markdown_table(["class", "precision", "recall", "F1", "support"], body)


def class_counts_table(stats: dict[str, Any]) -> str:
    """Rows per class in each split."""
    body = [
        ["train", *(str(n) for n in stats["class_counts_train"])],
        ["test", *(str(n) for n in stats["class_counts_test"])],
    ]
    return markdown_table(["split", *(str(c) for c in range(N_CLASSES))], body)


def importance_grid(importance: dict[str, Any]) -> str:
    """Permutation importance of each pixel, laid out as the 8x8 image."""
    values = np.asarray(importance["importances_mean"]).reshape(8, 8)
    body = [[f"row {r}", *(fmt(v, 3) for v in values[r])] for r in range(8)]
    return markdown_table(["", *(f"col {c}" for c in range(8))], body)


def _rate(value: float | None) -> str:
    """A rate for a table, or a dash when nothing was measured."""
    return "—" if value is None else fmt(value, 3)


def stress_table(robustness: dict[str, Any]) -> str:
    """Every stress family at every strength: accuracy, flag rate, silent-error rate, flips."""
    body = []
    for test, result in sorted(robustness["stress"].items()):
        for key, score in result["by_strength"].items():
            rates = ("accuracy", "flag_rate", "silent_error_rate", "flip_rate")
            body.append([f"`{test}`", key, *(fmt(score[rate], 3) for rate in rates)])
    header = [
        "stress family",
        "strength",
        "accuracy",
        "flagged (OOD)",
        "silent errors (wrong, not flagged)",
        "flip rate",
    ]
    return markdown_table(header, body)


def shift_ink_table(robustness: dict[str, Any], pixels: int) -> str:
    """Per shift direction at ``pixels``: the rows whose ink stays in the frame and those whose
    ink is cut, each with its accuracy, flag rate and silent-error rate."""
    body = []
    for test, result in sorted(robustness["stress"].items()):
        record = result["by_strength"].get(str(pixels))
        if record is None or "ink_cut" not in record:
            continue
        kept, cut = record["ink_kept"], record["ink_cut"]
        body.append(
            [
                f"`{test}`",
                str(kept["n"]),
                _rate(kept["accuracy"]),
                _rate(kept["silent_error_rate"]),
                str(cut["n"]),
                _rate(cut["accuracy"]),
                _rate(cut["flag_rate"]),
                _rate(cut["silent_error_rate"]),
            ]
        )
    header = [
        f"shift by {pixels} px",
        "ink kept: rows",
        "accuracy",
        "silent errors",
        "ink cut: rows",
        "accuracy",
        "flagged",
        "silent errors",
    ]
    return markdown_table(header, body)


_INK_CUT_RATES = (
    "accuracy",
    "rule_flag_rate",
    "pca_flag_rate",
    "flag_rate",
    "silent_error_rate_pca_only",
    "silent_error_rate",
)


def ink_cut_table(experiment: dict[str, Any]) -> str:
    """What the ink-cut rule achieves on the rows a shift cuts, per direction."""
    rows = [
        (f"{direction.replace('_', '-')} {experiment['pixels']} px", r)
        for direction, r in experiment["by_direction"].items()
    ]
    noisy = experiment["with_noise"]
    rows.append((f"the same, vertical and diagonal, + noise sigma {noisy['sigma']:g}", noisy))
    body = [
        [label, str(r["n"]), *(fmt(r[rate], 3) for rate in _INK_CUT_RATES)]
        for label, r in rows
        if r["n"]
    ]
    header = [
        "rows with ink cut",
        "rows",
        "accuracy",
        "flagged: rule",
        "flagged: PCA",
        "flagged: served",
        "silent errors: PCA only",
        "silent errors: served",
    ]
    return markdown_table(header, body)


def adversarial_table(robustness: dict[str, Any]) -> str:
    """Adversarial accuracy, success rate and perturbation size per attack and eps."""
    adversarial = robustness["adversarial"]
    body = []
    for attack in ("fgsm", "pgd", "hopskipjump"):
        result = adversarial.get(attack, {})
        if result.get("status") != "ok":
            body.append([attack.upper(), "—", result.get("status", "not run"), "", "", "", ""])
            continue
        for eps, score in result["by_eps"].items():
            body.append(
                [
                    attack.upper(),
                    result.get("kind", "").split(" (")[0],
                    eps,
                    fmt(score["adversarial_accuracy"], 3),
                    *(
                        fmt(score[key], 3) if key in score else "—"
                        for key in ("attack_success_rate", "mean_linf", "mean_l2")
                    ),
                ]
            )
    return markdown_table(
        [
            "attack",
            "kind",
            "eps (L∞)",
            "adversarial accuracy",
            "success rate",
            "mean L∞",
            "mean L2",
        ],
        body,
    )


def lineage_table(lineage: Mapping[str, tuple[str, int]]) -> str:
    """Each upstream artifact with the md5 that dvc.lock records for it."""
    body = [[f"`{path}`", f"`{md5}`", str(size)] for path, (md5, size) in sorted(lineage.items())]
    return markdown_table(["artifact", "md5", "bytes"], body, align="left")


def library_table(metadata: dict[str, Any]) -> str:
    """Library versions the model was trained and exported with."""
    body = [[name, version] for name, version in sorted(metadata["library_versions"].items())]
    return markdown_table(["library", "version"], body, align="left")


def interval(record: Mapping[str, Any]) -> str:
    """``0.9682 to 0.9924`` or a dash."""
    ci = record.get("ci95")
    return "—" if ci is None else f"{fmt(ci[0])} to {fmt(ci[1])}"


def gates_table(sections: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Every gate: what it measures, threshold, value, 95 % interval, verdict and rationale."""
    body = []
    for section, verdicts in sections.items():
        for name, gate in verdicts.items():
            relation = "≥" if gate["kind"] == "min" else "≤"
            value = gate.get("value")
            body.append(
                [
                    f"`{section}.{name}`: {gate['description']}",
                    f"{relation} {gate['threshold']}",
                    "—" if value is None else fmt(value),
                    interval(gate),
                    status(gate),
                    gate["rationale"],
                ]
            )
    header = ["gate", "threshold", "measured", "95 % CI", "verdict", "user need"]
    return markdown_table(header, body, align="left")


def selection_table(selection: Mapping[str, Any]) -> str:
    """Every candidate's validation accuracies, ONNX size and eligibility."""
    criteria = (*SELECTION_CRITERIA, "score")
    body = [
        [
            f"**{name}**" if name == selection["winner"] else name,
            *(fmt(c["validation"][k]) for k in criteria),
            str(c["onnx_bytes"]),
            "yes" if c["eligible"] else "no: " + "; ".join(c["ineligible_because"]),
        ]
        for name, c in selection["candidates"].items()
    ]
    header = ["candidate", *criteria, "ONNX bytes", "eligible"]
    return markdown_table(header, body)


def ood_table(report: Mapping[str, Any]) -> str:
    """Flag rates of the OOD detector on in-distribution and synthetic sets."""
    body = [
        [f"`{name}`", "in-distribution", str(r["n"]), fmt(r["rate"]), interval(r), "—"]
        for name, r in report["false_positive"].items()
    ]
    body += [
        [
            f"`{name}`",
            "out-of-distribution",
            str(r["n"]),
            fmt(r["rate"]),
            interval(r),
            fmt(r["auroc"]),
        ]
        for name, r in report["detection"].items()
    ]
    header = ["set", "kind", "rows", "flagged", "95 % CI", "AUROC vs clean"]
    return markdown_table(header, body)
