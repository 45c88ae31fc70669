"""The figures' deterministic SVG settings, on small figures made here (no pipeline outputs):
same bytes every time whatever the user's matplotlib settings, no date or version, text
kept as text, no bitmap; captions of one sentence and axes that name their units."""

from __future__ import annotations

import re

import matplotlib
import pytest

from stages.lib.figures_quality import confusion_counts, confusion_figure
from stages.lib.gates import wilson_interval
from stages.lib.plotting import (
    PALETTE,
    Rendered,
    curve_with_band,
    gate_line,
    new_figure,
    render,
    successes,
    wilson_band,
)

pytestmark = pytest.mark.unit

OKABE_ITO = {"#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442"}


def small_figure(caption: str = "Look at the curve.", xlabel: str = "sigma (pixels)") -> Rendered:
    figure = new_figure(4.0, 3.0)
    ax = figure.add_subplot()
    curve_with_band(ax, [0.0, 1.0, 2.0], [0.99, 0.9, 0.5], n=450, level=0.95, index=0, label="a")
    gate_line(ax, 0.93, "gate")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (fraction)")
    ax.legend()
    return render("small", "A small figure", caption, figure)


def test_same_inputs_give_the_same_bytes_whatever_the_user_settings() -> None:
    first = small_figure().svg
    with matplotlib.rc_context({"svg.hashsalt": None, "font.size": 20.0, "svg.fonttype": "path"}):
        matplotlib.rcParams["lines.linewidth"] = 7.0
        second = small_figure().svg
    assert first == second
    ids = re.findall(rb'id="([^"]+)"', first)
    assert len(ids) == len(set(ids))


def test_no_date_no_version_no_bitmap_and_text_stays_text() -> None:
    svg = small_figure().svg.decode("utf-8")
    assert "<dc:date>" not in svg
    assert "<dc:creator>" not in svg
    assert matplotlib.__version__ not in svg
    assert "<image" not in svg
    assert "<title>A small figure</title>" in svg
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "A small figure" in texts
    assert "accuracy (fraction)" in texts
    assert "font-family: 'DejaVu Sans'" in svg  # glyphs are not outlined into paths
    assert '<use xlink:href="#DejaVuSans' not in svg


def test_curves_use_the_colour_blind_safe_palette() -> None:
    svg = small_figure().svg.decode("utf-8").lower()
    assert set(PALETTE) <= {colour.upper() for colour in OKABE_ITO}
    assert PALETTE[0].lower() in svg
    colours = set(re.findall(r"#[0-9a-f]{6}", svg))
    neutral = {"#000000", "#ffffff", "#dddddd", "#cccccc", "#7f7f7f"}
    assert colours - neutral <= OKABE_ITO, colours - neutral - OKABE_ITO


def test_a_caption_is_one_sentence() -> None:
    with pytest.raises(ValueError, match="one sentence"):
        small_figure(caption="Look here. Then there.")
    with pytest.raises(ValueError, match="one sentence"):
        small_figure(caption="No full stop")


def test_an_axis_label_names_its_unit() -> None:
    with pytest.raises(ValueError, match="x axis label names its unit"):
        small_figure(xlabel="sigma")


def test_wilson_band_uses_the_count_behind_each_rounded_rate() -> None:
    rates = [0.986667, 0.5, 1.0]
    low, high = wilson_band(rates, 450, 0.95)
    assert successes(0.986667, 450) == 444
    expected = [wilson_interval(successes(r, 450), 450, 0.95) for r in rates]
    assert low == pytest.approx([lo for lo, _ in expected], rel=1e-5)
    assert high == pytest.approx([hi for _, hi in expected], rel=1e-5)
    assert all(len(repr(v).lstrip("0.").rstrip("0")) <= 8 for v in low + high)
    assert high[2] == 1.0
    assert low[0] < 0.986667 < high[0]


def test_confusion_figure_counts_every_row_once() -> None:
    rows = [{"actual": a, "predicted": a} for a in range(10)] * 3
    rows += [{"actual": 8, "predicted": 1}, {"actual": 8, "predicted": 1}]
    counts = confusion_counts(rows)
    assert counts[8][1] == 2
    assert counts[8][8] == 3
    assert sum(map(sum, counts)) == len(rows)
    rendered = confusion_figure(rows)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", rendered.svg.decode("utf-8"))
    assert rendered.title == "Confusion matrix on the clean test split (32 images)"
    assert texts.count("2") >= 1
    assert "40%" in texts  # 2 of the 5 eights read as 1, row-normalised
