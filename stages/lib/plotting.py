"""Deterministic SVG figures with matplotlib: the settings, palette and helpers every figure
of the ``figures`` stage shares.

The same inputs give the same bytes on any machine: the Agg/SVG backends only (no GUI), a
fixed ``svg.hashsalt`` (clip-path and other ids), text kept as ``<text>`` (``svg.fonttype
= 'none'``, nothing font-dependent is embedded), no date or matplotlib version in the
metadata, no raster images (a colour scale is a few discrete boxes, never a bitmap), and
every coordinate computed here rounded to report precision before it is drawn.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from stages.lib.canonical import canonical_float
from stages.lib.gates import wilson_interval

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe & Ito's colour-blind-safe palette (Color Universal Design).
BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
SKY_BLUE = "#56B4E9"
YELLOW = "#F0E442"
BLACK = "#000000"
GREY = "#7F7F7F"
PALETTE = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY_BLUE)
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)))
# Gate thresholds: black dashed lines, apart from every data colour.
GATE_STYLE: dict[str, Any] = {"color": BLACK, "linestyle": "--", "linewidth": 1.2}
BAND_ALPHA = 0.18
# Symbols of the labels (named, so no look-alike letter hides in the source).
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"
EPSILON = "\N{GREEK SMALL LETTER EPSILON}"
PIXEL_SCALE = "pixel levels on the 0\N{EN DASH}16 scale"

RC: dict[str, Any] = {
    "svg.hashsalt": "digits-mlops-figures",
    "svg.fonttype": "none",
    "svg.image_inline": True,
    "font.family": ["DejaVu Sans"],
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "figure.titlesize": 11.0,
    "legend.fontsize": 8.0,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
    "figure.dpi": 100.0,
    "savefig.dpi": 100.0,
}
# Nothing in the file may depend on when or with which matplotlib it was made.
SVG_METADATA: dict[str, str | None] = {
    "Date": None,
    "Creator": None,
    "Contributor": None,
    "Publisher": None,
}


UNIT = re.compile(r"\(.+\)")


@dataclass(frozen=True)
class Rendered:
    """One finished figure: its file stem, title, one-sentence caption and SVG bytes."""

    name: str
    title: str
    caption: str
    svg: bytes


def configure() -> None:
    """Select the non-interactive backend and the deterministic settings: matplotlib's own
    defaults (no ``matplotlibrc`` of the user or the working directory) and ``RC``."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcdefaults()
    matplotlib.rcParams.update(cast(Any, RC))


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout (no pyplot state)."""
    from matplotlib.figure import Figure

    configure()
    return Figure(figsize=(width, height), layout="constrained")


def render(name: str, title: str, caption: str, figure: Figure) -> Rendered:
    """The figure as SVG bytes, with its title as the document title."""
    if not caption.endswith(".") or caption.count(". ") > 0:
        raise ValueError(f"{name}: the caption must be one sentence ending in '.': {caption!r}")
    for axis in ("x", "y"):
        labels = [getattr(ax, f"get_{axis}label")() for ax in figure.axes if ax.get_visible()]
        if not any(UNIT.search(label) for label in labels):
            raise ValueError(f"{name}: no {axis} axis label names its unit in parentheses")
    figure.suptitle(title, fontweight="bold")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={**SVG_METADATA, "Title": title})
    return Rendered(name=name, title=title, caption=caption, svg=buffer.getvalue())


def rounded(values: Iterable[float]) -> list[float]:
    """Coordinates at report precision, so float noise in their maths draws no other path."""
    return [canonical_float(float(v)) for v in values]


def successes(rate: float, n: int) -> int:
    """The count behind a rate reported at 6 significant digits out of ``n`` trials."""
    return round(rate * n)


def wilson_band(rates: Sequence[float], n: int, level: float) -> tuple[list[float], list[float]]:
    """Lower and upper Wilson bounds of each rate measured on ``n`` trials."""
    bounds = [wilson_interval(successes(rate, n), n, level) for rate in rates]
    return rounded(low for low, _ in bounds), rounded(high for _, high in bounds)


def percent(level: float) -> str:
    """``0.95`` -> ``95 %``."""
    return f"{level * 100:g} %"


def curve_with_band(
    ax: Axes,
    x: Sequence[float],
    rates: Sequence[float],
    *,
    n: int,
    level: float,
    index: int,
    label: str,
) -> None:
    """One accuracy curve, its markers and its Wilson band, in the ``index``-th style."""
    low, high = wilson_band(rates, n, level)
    colour = PALETTE[index % len(PALETTE)]
    ax.fill_between(x, low, high, color=colour, alpha=BAND_ALPHA, linewidth=0)
    ax.plot(
        x,
        rounded(rates),
        color=colour,
        marker=MARKERS[index % len(MARKERS)],
        linestyle=LINESTYLES[index % len(LINESTYLES)],
        markersize=4.5,
        linewidth=1.5,
        label=label,
    )


def gate_line(ax: Axes, threshold: float, label: str, *, horizontal: bool = True) -> None:
    """A gate's threshold as a dashed black line, labelled in the legend."""
    if horizontal:
        ax.axhline(threshold, label=label, **GATE_STYLE)
    else:
        ax.axvline(threshold, label=label, **GATE_STYLE)


def gate_marker(ax: Axes, x: float, gate: dict[str, Any], label: str) -> None:
    """A gate's measured value at its strength, with the interval the gate reports."""
    low, high = gate["ci95"]
    value = gate["value"]
    ax.errorbar(
        [x],
        [value],
        yerr=[[canonical_float(value - low)], [canonical_float(high - value)]],
        fmt="*",
        color=BLACK,
        markersize=9,
        capsize=3,
        linewidth=1.0,
        label=label,
        zorder=5,
    )


def plain_log_ticks(axis: Any, ticks: Sequence[float], template: str = "{x:g}") -> None:
    """Fixed major ticks with plain labels and no minor ticks on a log ``axis`` (hundreds of
    log minor ticks and math-text labels are most of a small figure's drawing time)."""
    from matplotlib.ticker import FixedLocator, NullLocator, StrMethodFormatter

    axis.set_major_locator(FixedLocator(list(ticks)))
    axis.set_major_formatter(StrMethodFormatter(template))
    axis.set_minor_locator(NullLocator())


def accuracy_axis(ax: Axes, bottom: float = 0.0) -> None:
    """The y axis of an accuracy plot."""
    ax.set_ylim(bottom, 1.02)
    ax.set_ylabel("accuracy (fraction of images read correctly)")
