"""The detector's ink-cut rule: what it flags, what it leaves alone, and that the served ONNX
graph applies the same rule as numpy (score >= 2 for a cut row, the PCA part apart)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.classifier import OOD_PCA_SCORE_OUTPUT, onnx_scores
from stages.lib.ink_cut import CUT_SCORE, ink_cut
from stages.lib.params import parse_params
from stages.lib.perturbations import TRANSLATIONS, gaussian_noise, translate
from stages.ood import Detector, export_detector, fit_detector

pytestmark = pytest.mark.unit

Images = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def digits() -> tuple[Images, npt.NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


def rows_inked(*rows: int) -> Images:
    """One image with a stroke of 4 in each of ``rows``."""
    image = np.zeros((8, 8))
    for row in rows:
        image[row, 2:6] = 4.0
    return image.reshape(1, 64)


def test_ink_at_one_edge_with_the_far_rows_blank_is_cut() -> None:
    cases = {
        (0, 1, 2, 3, 4, 5): True,  # moved up 2 rows: ink in row 0, rows 6-7 blank
        (2, 3, 4, 5, 6, 7): True,  # moved down 2 rows
        (0, 3): True,
        (0, 1, 2, 3, 4, 5, 6): False,  # moved up 1 row: row 6 still inked
        (0, 7): False,  # inked at both edges: a whole digit
        (1, 2, 3, 4, 5, 6): False,  # short and centred: nothing crossed an edge
        (2, 3, 4): False,
        (): False,  # blank: another rule's business (the PCA T^2 flags it)
    }
    X = np.concatenate([rows_inked(*rows) for rows in cases])
    assert ink_cut(X, 2).tolist() == list(cases.values())
    assert ink_cut(X, 0).tolist() == [False] * len(cases)  # 0 turns the rule off
    # With 1 blank row the rule would flag a 1-pixel shift too: that is why it is 2.
    assert bool(ink_cut(rows_inked(0, 1, 2, 3, 4, 5, 6), 1)[0])
    # A faint trace in a vacated row is ink: the rule needs the rows blank.
    faint = rows_inked(0, 1, 2, 3, 4, 5)
    faint[0, 7 * 8] = 0.01
    assert not ink_cut(faint, 2)[0]


def test_no_digit_and_no_one_pixel_shift_is_cut_but_every_vertical_two_pixel_one_is(
    digits: tuple[Images, npt.NDArray[np.int64]],
) -> None:
    X = digits[0]
    assert not ink_cut(X, 2).any()  # every digit fills the frame's height
    for direction in TRANSLATIONS:
        assert not ink_cut(translate(X, direction, 1), 2).any(), direction
        cut = ink_cut(translate(X, direction, 2), 2)
        vertical = direction.split("_")[0] in ("up", "down")
        assert cut.all() if vertical else not cut.any(), direction
    # Noise fills the vacated rows: the rule cannot see the cut any more.
    noisy = gaussian_noise(translate(X, "up", 2), 2.0, np.random.default_rng(0))
    assert ink_cut(noisy, 2).mean() < 0.01


@pytest.fixture(scope="module")
def detector(digits: tuple[Images, npt.NDArray[np.int64]]) -> Detector:
    X, y = digits
    params = parse_params("train: {augment: {noise_copies: 1}}\nood: {n_components: 20}\n")
    return fit_detector(X[:900], y[:900], params)


def test_the_served_graph_applies_the_rule_beside_the_pca_scores(
    detector: Detector, digits: tuple[Images, npt.NDArray[np.int64]]
) -> None:
    X = digits[0][900:1200]
    inputs = np.concatenate(
        [X, *(translate(X, d, p) for d in TRANSLATIONS for p in (1, 2)), np.zeros((2, 64))]
    )
    served = export_detector(detector)
    score = onnx_scores(served, inputs)
    pca = onnx_scores(served, inputs, OOD_PCA_SCORE_OUTPUT)
    cut = ink_cut(inputs, detector.blank_rows)
    assert cut.sum() > 1000
    np.testing.assert_array_equal(score[~cut], pca[~cut])  # the rule adds nothing elsewhere
    assert np.all(score[cut] >= CUT_SCORE)  # flagged, whatever the PCA part says
    np.testing.assert_array_equal(score[cut], np.maximum(pca[cut], np.float32(CUT_SCORE)))
    np.testing.assert_array_equal(score > 1.0, detector.score(inputs) > 1.0)
    np.testing.assert_allclose(pca, detector.pca_score(inputs), rtol=1e-3, atol=1e-3)


def test_with_the_rule_off_the_graph_has_no_rule(
    detector: Detector, digits: tuple[Images, npt.NDArray[np.int64]]
) -> None:
    import onnx

    off = Detector(detector.pca, detector.t2_scale, detector.q_scale, detector.threshold, 0)
    served = export_detector(off)
    assert "Sign" not in {node.op_type for node in onnx.load_from_string(served).graph.node}
    up = translate(digits[0][900:1000], "up", 2)
    np.testing.assert_array_equal(
        onnx_scores(served, up), onnx_scores(served, up, OOD_PCA_SCORE_OUTPUT)
    )
