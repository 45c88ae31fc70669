"""Figures of the robustness and out-of-distribution evidence: accuracy against noise, shift
and attack strength (95 % Wilson bands, gate thresholds drawn), and the OOD score histograms.

Every value comes from the reports at their canonical precision (``reports/robustness.json``,
``reports/plots/ood_scores.json``, ``reports/ood.json``); only the bands are computed here.
"""

from __future__ import annotations

from typing import Any

from stages.lib.params import RobustnessGates
from stages.lib.plotting import (
    EPSILON,
    GATE_STYLE,
    PALETTE,
    PIXEL_SCALE,
    SIGMA,
    Rendered,
    accuracy_axis,
    curve_with_band,
    gate_line,
    gate_marker,
    new_figure,
    percent,
    plain_log_ticks,
    render,
    rounded,
)

DIRECTIONS = ("up", "down", "left", "right")
DIAGONALS = ("up_left", "up_right", "down_left", "down_right")
ATTACKS = ("fgsm", "pgd")
# The OOD panels: the in-distribution sets first, then the synthetic families.
OOD_ORDER = (
    "clean_test",
    "shifted_1px_test",
    "noise_sigma2_test",
    "blank",
    "all_16",
    "uniform_noise",
    "inverted",
    "sparse_0_16",
    "checkerboard",
)
SCORE_TICKS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
COUNT_TICKS = (1.0, 10.0, 100.0, 1000.0)
LOG10_LIMITS = (-1.0, 1.5)
OOD_NAMES = {
    "clean_test": "clean test digits",
    "shifted_1px_test": "test digits shifted 1 px",
    "noise_sigma2_test": f"test digits, noise {SIGMA}=2",
    "blank": "blank images",
    "all_16": "all pixels 16",
    "uniform_noise": "uniform noise",
    "inverted": "inverted test digits",
    "sparse_0_16": "sparse 0/16 salt",
    "checkerboard": "checkerboards",
}


def _curve(
    stress: dict[str, Any], test: str, field: str = "accuracy"
) -> tuple[list[float], list[float]]:
    """Strengths (ascending) and accuracies (or another rate) of one stress test."""
    points = sorted((float(k), v[field]) for k, v in stress[test]["by_strength"].items())
    return [x for x, _ in points], [a for _, a in points]


def noise_figure(robustness: dict[str, Any], gates: RobustnessGates, level: float) -> Rendered:
    """Accuracy against Gaussian noise sigma, its band and the noise gate."""
    gate, sigma = robustness["gates"]["noise"], gates.noise.sigma
    sigmas, accuracy = _curve(robustness["stress"], "gaussian_noise")
    figure = new_figure(6.4, 3.8)
    ax = figure.add_subplot()
    curve_with_band(
        ax,
        sigmas,
        accuracy,
        n=robustness["n_test"],
        level=level,
        index=0,
        label=f"accuracy ({percent(level)} Wilson band, {robustness['n_test']} test images)",
    )
    gate_line(ax, gate["threshold"], f"noise gate: ≥ {gate['threshold']:g} at {SIGMA}={sigma:g}")
    gate_marker(ax, sigma, gate, "gated value and its interval")
    ax.set_xlabel(f"Gaussian noise {SIGMA} ({PIXEL_SCALE})")
    accuracy_axis(ax)
    ax.legend(loc="lower left")
    return render(
        "robustness_noise",
        "Accuracy against Gaussian pixel noise",
        "Look for where the curve and its band cross the dashed gate line: the star, at the "
        f"gated {SIGMA}, must stay above it.",
        figure,
    )


def shift_figure(robustness: dict[str, Any], gates: RobustnessGates, level: float) -> Rendered:
    """Accuracy (top) and silent-error rate (bottom) against shift distance, per direction,
    with the shift gates: mean and worst direction, ink kept in the frame, silent errors."""
    stress, verdicts, n = robustness["stress"], robustness["gates"], robustness["n_test"]
    figure = new_figure(8.6, 7.2)
    axes = figure.subplots(2, 2, sharex=True)
    silent_top = max(
        row["silent_error_rate"]
        for name in DIRECTIONS + DIAGONALS
        for row in stress[_shift_family(name)]["by_strength"].values()
    )
    for column, names, heading in (
        (0, DIRECTIONS, "up, down, left, right"),
        (1, DIAGONALS, "diagonal (both axes)"),
    ):
        accuracy_ax, silent_ax = axes[0][column], axes[1][column]
        for index, name in enumerate(names):
            label = name.replace("_", "-")
            pixels, accuracy = _curve(stress, _shift_family(name))
            curve_with_band(
                accuracy_ax, pixels, accuracy, n=n, level=level, index=index, label=label
            )
            _, silent = _curve(stress, _shift_family(name), "silent_error_rate")
            curve_with_band(silent_ax, pixels, silent, n=n, level=level, index=index, label=label)
        accuracy_ax.set_title(f"shift {heading}")
        accuracy_axis(accuracy_ax)
        silent_ax.set_xlabel("shift distance (pixels)")
        silent_ax.set_xticks(pixels)
        silent_ax.set_ylim(0.0, 0.2 if silent_top <= 0.18 else 1.02)
        silent_ax.set_ylabel("silent-error rate (fraction wrong and not flagged)")
        silent_ax.axhline(
            verdicts["shift_silent_error"]["threshold"],
            label=f"silent-error gate ≤ {verdicts['shift_silent_error']['threshold']:g}",
            **GATE_STYLE,
        )
    mean_gate, worst_gate = verdicts["shift_mean"], verdicts["shift_worst_direction"]
    kept_gate = verdicts["shift_ink_kept"]
    for ax in axes[0]:
        gate_line(ax, mean_gate["threshold"], f"mean-shift gate ≥ {mean_gate['threshold']:g}")
        ax.axhline(
            worst_gate["threshold"],
            label=f"worst-direction gate ≥ {worst_gate['threshold']:g}",
            **{**GATE_STYLE, "linestyle": ":"},
        )
    gate_marker(
        axes[0][0],
        gates.shift_mean.pixels,
        mean_gate,
        "mean over 8 directions (bootstrap interval)",
    )
    if kept_gate["value"] is not None:
        gate_marker(
            axes[0][0],
            gates.shift_ink_kept.pixels,
            kept_gate,
            "ink kept in the frame (all directions pooled)",
        )
    gate_marker(
        axes[1][0],
        gates.shift_silent_error.pixels,
        verdicts["shift_silent_error"],
        "worst direction (gated)",
    )
    axes[0][1].set_ylabel("")
    axes[1][1].set_ylabel("")
    for row, corner in enumerate(("lower left", "upper left")):
        for ax in axes[row]:
            ax.legend(loc=corner, fontsize=7.0)
    return render(
        "robustness_shift",
        "Accuracy and silent errors against shift distance and direction",
        f"Bands are {percent(level)} Wilson intervals over {n} test images; look at "
        f"{gates.shift_mean.pixels} pixel(s), where the accuracy and silent-error gates apply, "
        f"and at {gates.shift_ink_kept.pixels} pixels, where ink cut off the frame costs "
        "accuracy but the detector flags those rows instead of answering them silently.",
        figure,
    )


def _shift_family(name: str) -> str:
    """The robustness report's family of a direction (``up`` or ``up_left``)."""
    return f"shift_{name}" if name in DIRECTIONS else f"diagonal_shift_{name}"


def attack_figure(robustness: dict[str, Any], gates: RobustnessGates, level: float) -> Rendered:
    """FGSM and PGD accuracy against eps (transfer or white-box), with the adversarial gate."""
    adversarial, gate = robustness["adversarial"], robustness["gates"]["adversarial"]
    n = adversarial["subset_size"]
    figure = new_figure(6.4, 3.8)
    ax = figure.add_subplot()
    for index, attack in enumerate(ATTACKS):
        points = sorted(
            (float(eps), row["adversarial_accuracy"])
            for eps, row in adversarial[attack]["by_eps"].items()
        )
        curve_with_band(
            ax,
            [eps for eps, _ in points],
            [acc for _, acc in points],
            n=n,
            level=level,
            index=index,
            label=f"{attack.upper()} ({percent(level)} Wilson band, {n} images)",
        )
    eps, gated = gates.adversarial.eps, gates.adversarial.attack.upper()
    gate_line(ax, gate["threshold"], f"{gated} gate: ≥ {gate['threshold']:g} at {EPSILON}={eps:g}")
    gate_marker(ax, eps, gate, "gated value and its interval")
    ax.set_xlabel(f"attack budget {EPSILON} (L\N{INFINITY}, {PIXEL_SCALE})")
    accuracy_axis(ax)
    ax.legend(loc="lower left")
    transfer = str(adversarial["gradient_attack_kind"]).startswith("transfer")
    kind = "transferred from a surrogate model" if transfer else "white-box"
    return render(
        "robustness_attacks",
        "Accuracy under FGSM and PGD attacks",
        f"Attacks are {kind}; look at the star at the gated {EPSILON}, which must stay above the "
        "dashed line, and at how fast accuracy falls at larger budgets.",
        figure,
    )


def ood_figure(histograms: dict[str, Any], ood: dict[str, Any]) -> Rendered:
    """One log-log histogram per evaluated set, with the flagging threshold."""
    edges = [10.0**e for e in histograms["log10_edges"]]
    edges = rounded(edges)
    sets = histograms["sets"]
    names = [name for name in OOD_ORDER if name in sets]
    names += sorted(set(sets) - set(names))
    columns = 3
    rows = -(-len(names) // columns)
    figure = new_figure(8.6, 2.2 * rows + 0.6)
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    rates = {**ood["false_positive"], **ood["detection"]}
    for index, ax in enumerate(axes.flat):
        if index >= len(names):
            ax.set_visible(False)
            continue
        name = names[index]
        entry = sets[name]
        in_distribution = entry["role"] == "in-distribution"
        colour = PALETTE[0] if in_distribution else PALETTE[1]
        ax.stairs(entry["counts"], edges, fill=True, color=colour, alpha=0.85)
        ax.axvline(histograms["threshold"], **GATE_STYLE)
        _log_axes(ax)
        flagged = rates[name]["rate"] if name in rates else None
        word = "flagged" if in_distribution else "detected"
        shown = "" if flagged is None else f": {flagged:.1%} {word}"
        ax.set_title(f"{OOD_NAMES.get(name, name)}{shown}", fontsize=8.5)
        outside = entry["below"] + entry["above"]
        if outside:
            ax.text(0.98, 0.9, f"{outside} off scale", transform=ax.transAxes, ha="right")
        if index % columns == 0:
            ax.set_ylabel("images (log scale)")
        if index // columns == rows - 1:
            ax.set_xlabel("OOD score (log scale)")
    handles = [
        _patch(PALETTE[0], "digits: flagging one is a false positive"),
        _patch(PALETTE[1], "synthetic non-digits: flagging is a detection"),
        _line("threshold: score > 1 is flagged"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    return render(
        "ood_scores",
        "OOD detector scores by input set",
        "Blue digit histograms should sit left of the dashed threshold and orange non-digit "
        "histograms right of it; mass on the wrong side is a false positive or a miss.",
        figure,
    )


def _log_axes(ax: Any) -> None:
    """Log-scaled score and count axes with a few plainly labelled ticks."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(10.0 ** LOG10_LIMITS[0], 10.0 ** LOG10_LIMITS[1])
    ax.set_ylim(0.7, 3000)
    plain_log_ticks(ax.xaxis, SCORE_TICKS)
    plain_log_ticks(ax.yaxis, COUNT_TICKS)


def _patch(colour: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=colour, label=label)


def _line(label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], label=label, **GATE_STYLE)
