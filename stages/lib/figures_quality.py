"""Figures of the clean-test quality and the model selection: the confusion matrix, per-class
recall with Wilson intervals, the reliability diagram and the candidates against the rule.

Every value comes from the reports at their canonical precision (``reports/metrics.json``,
``reports/plots/confusion.json``, ``reports/plots/calibration.json``,
``reports/model_selection.json``); only intervals and shares are computed here, rounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stages.lib.canonical import canonical_float
from stages.lib.gates import SELECTION_CRITERIA, validation_trials
from stages.lib.plotting import (
    BLACK,
    BLUE,
    GATE_STYLE,
    GREY,
    MARKERS,
    ORANGE,
    PALETTE,
    Rendered,
    gate_line,
    new_figure,
    percent,
    plain_log_ticks,
    render,
    rounded,
    wilson_band,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

N_CLASSES = 10
# Discrete colour steps of the confusion matrix (a continuous colour bar would be a bitmap).
SHARE_STEPS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 1.0)
CRITERIA = SELECTION_CRITERIA


def confusion_counts(rows: list[dict[str, int]]) -> list[list[int]]:
    """``counts[actual][predicted]`` from the per-sample rows of ``confusion.json``."""
    counts = [[0] * N_CLASSES for _ in range(N_CLASSES)]
    for row in rows:
        counts[row["actual"]][row["predicted"]] += 1
    return counts


def _matrix(ax: Axes, shares: list[list[float]], labels: list[list[str]], title: str) -> Any:
    """One 10 x 10 panel coloured by ``shares`` (0..1), each cell labelled."""
    from matplotlib.colors import BoundaryNorm

    norm = BoundaryNorm(SHARE_STEPS, ncolors=256)
    mesh = ax.pcolormesh(
        [i - 0.5 for i in range(N_CLASSES + 1)],
        [i - 0.5 for i in range(N_CLASSES + 1)],
        shares,
        cmap="cividis_r",
        norm=norm,
        edgecolors="white",
        linewidth=0.5,
    )
    for actual in range(N_CLASSES):
        for predicted in range(N_CLASSES):
            text = labels[actual][predicted]
            if text:
                dark = shares[actual][predicted] >= 0.5
                ax.text(
                    predicted,
                    actual,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else BLACK,
                )
    ax.set_xticks(range(N_CLASSES))
    ax.set_yticks(range(N_CLASSES))
    ax.set_xlim(-0.5, N_CLASSES - 0.5)
    ax.set_ylim(N_CLASSES - 0.5, -0.5)
    ax.grid(False)
    ax.set_xlabel("predicted digit (class label)")
    ax.set_ylabel("actual digit (class label)")
    ax.set_title(title)
    return mesh


def confusion_figure(rows: list[dict[str, int]]) -> Rendered:
    """Counts and row-normalised shares of the clean test split."""
    counts = confusion_counts(rows)
    totals = [sum(row) or 1 for row in counts]
    shares = [[canonical_float(c / totals[a]) for c in counts[a]] for a in range(N_CLASSES)]
    figure = new_figure(9.0, 4.3)
    left, right = figure.subplots(1, 2)
    _matrix(left, shares, [[str(c) if c else "" for c in row] for row in counts], "counts")
    mesh = _matrix(
        right,
        shares,
        [[f"{s:.0%}" if s else "" for s in row] for row in shares],
        "share of each actual digit (row-normalised)",
    )
    bar = figure.colorbar(mesh, ax=right, ticks=SHARE_STEPS, spacing="uniform")
    bar.set_label("share of the row (fraction of that digit's test images)")
    return render(
        "confusion_matrix",
        f"Confusion matrix on the clean test split ({len(rows)} images)",
        "Everything off the diagonal is a misread digit; look for a shaded off-diagonal cell, "
        "a pair of digits the model confuses.",
        figure,
    )


def per_class_recall_figure(metrics: dict[str, Any], level: float) -> Rendered:
    """Recall of every digit with its Wilson interval, beside the overall accuracy."""
    classes = sorted(metrics["per_class"], key=int)
    recall = [metrics["per_class"][c]["recall"] for c in classes]
    low = [metrics["per_class"][c]["recall_ci95"][0] for c in classes]
    high = [metrics["per_class"][c]["recall_ci95"][1] for c in classes]
    support = [metrics["per_class"][c]["support"] for c in classes]
    positions = list(range(len(classes)))
    figure = new_figure(6.8, 3.8)
    ax = figure.add_subplot()
    ax.errorbar(
        positions,
        recall,
        yerr=[
            rounded(r - lo for r, lo in zip(recall, low, strict=True)),
            rounded(hi - r for r, hi in zip(recall, high, strict=True)),
        ],
        fmt="o",
        color=BLUE,
        capsize=3,
        label=f"recall ({percent(level)} Wilson interval)",
    )
    accuracy = metrics["accuracy"]
    ax.axhline(accuracy, color=GREY, linewidth=1.0, label=f"overall accuracy {accuracy:.4f}")
    gate = metrics["gates"]["clean_accuracy"]
    gate_line(ax, gate["threshold"], f"clean-accuracy gate ≥ {gate['threshold']:g} (overall)")
    ax.set_xticks(positions, [f"{c}\n(n={n})" for c, n in zip(classes, support, strict=True)])
    ax.set_xlabel("actual digit (test images per class)")
    ax.set_ylabel("recall (fraction of the digit read correctly)")
    ax.set_ylim(min(0.8, min(low) - 0.02), 1.02)
    ax.legend(loc="lower left")
    step = 1 / (sum(support) / len(support))
    return render(
        "per_class_recall",
        "Recall of each digit on the clean test split",
        f"Look for a digit whose interval reaches far below the others: with {min(support)} to "
        f"{max(support)} test images per digit, one misread image moves a recall by about "
        f"{step:.2f}.",
        figure,
    )


def reliability_figure(calibration: list[dict[str, Any]], ece: float) -> Rendered:
    """Accuracy against mean confidence per confidence bin, and the rows in each bin."""
    filled = [row for row in calibration if row["n"]]
    figure = new_figure(8.6, 3.9)
    diagram, counts = figure.subplots(1, 2, width_ratios=(1.2, 1.0))
    diagram.plot(
        [0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1.0, label="perfect calibration"
    )
    widths = rounded(row["high"] - row["low"] for row in filled)
    diagram.bar(
        [row["low"] for row in filled],
        [row["accuracy"] for row in filled],
        width=widths,
        align="edge",
        color=BLUE,
        alpha=0.35,
        edgecolor=BLUE,
        label="accuracy of the bin",
    )
    diagram.plot(
        [row["mean_confidence"] for row in filled],
        [row["accuracy"] for row in filled],
        "o",
        color=ORANGE,
        markersize=5,
        label="bin at its mean confidence",
    )
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1.02)
    diagram.set_xlabel("confidence (top-label probability)")
    diagram.set_ylabel("accuracy (fraction correct in the bin)")
    diagram.set_title(f"reliability, ECE = {ece:.4f}")
    diagram.legend(loc="upper left")
    counts.bar(
        [row["low"] for row in filled],
        [row["n"] for row in filled],
        width=widths,
        align="edge",
        color=BLUE,
        edgecolor="white",
    )
    counts.set_yscale("log")
    counts.set_ylim(0.7, 2 * max(row["n"] for row in filled))
    plain_log_ticks(counts.yaxis, (1, 10, 100, 1000))
    counts.set_xlim(0, 1)
    counts.set_xlabel("confidence (top-label probability)")
    counts.set_ylabel("test images in the bin (log scale)")
    counts.set_title("where the predictions fall")
    return render(
        "reliability",
        f"Reliability diagram ({len(calibration)} equal-width confidence bins)",
        "Points on the dashed diagonal are calibrated: below it the model is over-confident, "
        "above it under-confident; bins with few images (right panel) say little.",
        figure,
    )


def selection_figure(selection: dict[str, Any], max_onnx_bytes: int, level: float) -> Rendered:
    """Each candidate's validation accuracies against the gates, and its ONNX size."""
    names = list(selection["candidates"])
    thresholds = selection["thresholds"]
    figure = new_figure(10.4, 4.0)
    scores, sizes = figure.subplots(1, 2, width_ratios=(1.7, 1.0))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        validation = selection["candidates"][name]["validation"]
        xs = rounded(c + (index - (len(names) - 1) / 2) * width for c in range(len(CRITERIA)))
        values = [validation[c] for c in CRITERIA]
        bands = [
            wilson_band([v], validation_trials(c, validation) or 0, level)
            for c, v in zip(CRITERIA, values, strict=True)
        ]
        scores.errorbar(
            xs,
            values,
            yerr=[
                rounded(v - lo[0] for v, (lo, _) in zip(values, bands, strict=True)),
                rounded(hi[0] - v for v, (_, hi) in zip(values, bands, strict=True)),
            ],
            fmt=MARKERS[index],
            color=PALETTE[index],
            capsize=2.5,
            label=_candidate_label(selection, name),
        )
    for c, criterion in enumerate(CRITERIA):
        scores.hlines(
            thresholds[criterion],
            c - 0.45,
            c + 0.45,
            label="gate threshold" if c == 0 else None,
            **GATE_STYLE,
        )
    scores.set_xticks(range(len(CRITERIA)), [c.replace("_", "\n") for c in CRITERIA])
    scores.set_xlabel("criterion (the test gate each validation accuracy stands for)")
    scores.set_ylabel("validation accuracy (fraction)")
    scores.set_title(f"eligible: the {percent(level)} upper bound reaches each gate")
    handles, labels = scores.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    bytes_ = [selection["candidates"][name]["onnx_bytes"] for name in names]
    sizes.bar(range(len(names)), bytes_, color=[PALETTE[i] for i in range(len(names))])
    sizes.axhline(max_onnx_bytes, label=f"limit {max_onnx_bytes:,} bytes", **GATE_STYLE)
    sizes.set_yscale("log")
    plain_log_ticks(sizes.yaxis, [10**k for k in range(2, 10)], "{x:,.0f}")
    sizes.set_ylim(0.5 * min(*bytes_, max_onnx_bytes), 2 * max(*bytes_, max_onnx_bytes))
    sizes.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names])
    sizes.set_xlabel("candidate (model type)")
    sizes.set_ylabel("ONNX file size (bytes, log scale)")
    sizes.set_title("serving-latency proxy")
    sizes.legend(loc="upper left")
    return render(
        "model_selection",
        f"Model selection on the validation split: {selection['winner']} wins",
        "A candidate is eligible only when every interval reaches its gate mark and its bar "
        "stays under the size limit; the winner has the highest score among the eligible.",
        figure,
    )


def _candidate_label(selection: dict[str, Any], name: str) -> str:
    """Legend entry: the candidate, its verdict and its score."""
    candidate = selection["candidates"][name]
    verdict = (
        "winner"
        if name == selection["winner"]
        else ("eligible" if candidate["eligible"] else "not eligible")
    )
    return f"{name} ({verdict}, score {candidate['validation']['score']:.3f})"
