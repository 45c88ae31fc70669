"""The ink-cut rule of the out-of-distribution detector: a digit cut off at its top or bottom.

Every digit of this data set fills the frame's height (the UCI preprocessing size-normalises
each digit to the 32 rows of its bitmap: every training image has ink in pixel rows 0 and 7).
An image with ink in its top pixel row while its bottom ``blank_rows`` rows are blank (or the
reverse) has been moved at least ``blank_rows`` rows towards the inked edge, and the ink that
crossed that edge is lost: the classifier reads such images poorly (a digit without its top or
bottom), and the PCA scores hardly notice them (a cut digit looks like a digit to them).

With ``blank_rows = 2`` the rule flags a digit shifted 2 or more rows up or down, and no
training digit, no digit shifted by one pixel in any direction: each of those has ink within
one row of both edges. Columns have no such rule: digits are narrower than the frame, so a
horizontal shift mostly keeps the ink, and a left or right margin of two blank columns is
common among clean digits.

The served score adds ``CUT_SCORE`` for a cut row (:func:`stages.ood.export_detector`); here
is the same rule in numpy. Both read "ink" as a row sum > 0 of the float32 pixels: exact in
any summation order, because pixels are never negative (the service refuses them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

SIDE = 8
CUT_SCORE = 2.0  # the served score of a cut row: > 1, so flagged


def edge_weights(blank_rows: int) -> npt.NDArray[np.float32]:
    """``[64, 4]``: ``x @ W`` sums the top row, the bottom ``blank_rows`` rows, the bottom row
    and the top ``blank_rows`` rows of each image."""
    row = np.repeat(np.arange(SIDE), SIDE)
    columns = [row == 0, row >= SIDE - blank_rows, row == SIDE - 1, row < blank_rows]
    return np.stack(columns, axis=1).astype(np.float32)


def cut_weights() -> npt.NDArray[np.float32]:
    """``[4, 2]``: from whether each edge sum holds ink (0 or 1) to ``CUT_SCORE`` times
    "top inked, bottom blank" and "bottom inked, top blank" after a ``Relu``."""
    return (CUT_SCORE * np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])).astype(np.float32)


def ink_cut(X: npt.NDArray[Any], blank_rows: int) -> npt.NDArray[np.bool_]:
    """Per image: ink in its top (bottom) row and its bottom (top) ``blank_rows`` rows blank.

    Always False when ``blank_rows`` is 0 (the rule is off).
    """
    pixels = np.asarray(X, dtype=np.float32).astype(np.float64)
    if blank_rows == 0:
        return np.zeros(len(pixels), dtype=bool)
    inked = (pixels @ edge_weights(blank_rows).astype(np.float64)) > 0
    return np.asarray((inked[:, 0] & ~inked[:, 1]) | (inked[:, 2] & ~inked[:, 3]))
