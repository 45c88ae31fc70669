"""The demo page's own centring agrees with the model's alignment, in a real headless Chromium
against the real server.

The page centres a drawing's bounding box and scales it to the digit's height (the UCI
preprocessing the training digits went through); the served model then moves each image by
its intensity centroid (``stages/lib/align.py``). Drawn anywhere on the pad, at any size, a
digit reaches the model as a training digit does: its centroid within a pixel of where the
alignment puts it, its top and bottom rows inked alike, so the detector's ink-cut rule never
takes a drawing for a digit cut at the frame; and it gets the same answer wherever it was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from playwright.sync_api import Browser

from stages.lib.align import centroid_shifts
from stages.lib.ink_cut import ink_cut
from tests.integration.conftest import RunningServer
from tests.integration.demo_browser import (
    SEVEN,
    checked_page,
    demo_server,
    draw,
    grid_values,
    headless_chromium,
    open_demo,
    predict_directly,
)

pytestmark = pytest.mark.integration

Shape = list[tuple[float, float]]


def ring(cx: float, cy: float, rx: float, ry: float) -> Shape:
    return [
        (cx + rx * math.cos(k * math.pi / 12), cy + ry * math.sin(k * math.pi / 12))
        for k in range(25)
    ]


def moved(shape: Shape, dx: float, dy: float, scale: float = 1.0) -> Shape:
    """``shape`` scaled about the pad's corner and moved: another place and size on the pad."""
    return [(x * scale + dx, y * scale + dy) for x, y in shape]


SHAPES: dict[str, Shape] = {
    "seven": SEVEN,
    "seven, small in the top-left corner": moved(SEVEN, 0.02, 0.0, scale=0.4),
    "seven, small in the bottom-right corner": moved(SEVEN, 0.55, 0.55, scale=0.4),
    "round zero": ring(0.5, 0.5, 0.3, 0.3),
    "wide zero, low on the pad": ring(0.5, 0.75, 0.4, 0.15),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from demo_server(tmp_path_factory)


@pytest.fixture(scope="module")
def drawn(server: RunningServer) -> dict[str, list[int]]:
    """The 64 values the page sends for each shape, each drawn on a fresh page."""
    values = {}
    for browser in headless_chromium():
        for name, shape in SHAPES.items():
            values[name] = _draw_once(browser, server, shape)
    return values


def _draw_once(browser: Browser, server: RunningServer, shape: Shape) -> list[int]:
    for page in checked_page(browser):
        open_demo(page, server)
        draw(page, shape)
        return grid_values(page)
    raise AssertionError("no page")  # pragma: no cover - checked_page yields once


def test_the_page_centres_drawings_where_the_alignment_expects_them(
    drawn: dict[str, list[int]],
) -> None:
    for name, values in drawn.items():
        image = np.asarray(values, dtype=np.float64).reshape(1, 64)
        dv, dh = centroid_shifts(image)
        assert abs(int(dv[0])) <= 1, (name, int(dv[0]))
        assert abs(int(dh[0])) <= 1, (name, int(dh[0]))
        rows = image.reshape(8, 8).sum(axis=1) > 0
        assert rows[0] == rows[7], name  # top and bottom inked alike: nothing looks cut
        assert not ink_cut(image, 2)[0], name


def test_a_drawing_gets_the_same_answer_wherever_and_however_large_it_is_drawn(
    drawn: dict[str, list[int]], server: RunningServer
) -> None:
    sevens = [values for name, values in drawn.items() if name.startswith("seven")]
    answers = [predict_directly(server, values) for values in sevens]
    assert {answer["labels"][0] for answer in answers} == {7}
    assert not any(answer["ood"][0] for answer in answers)
