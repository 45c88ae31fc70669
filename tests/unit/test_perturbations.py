"""Perturbations: ranges, seeded determinism, shapes and identity at strength 0."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.perturbations import (
    DIRECTIONS,
    Direction,
    Translation,
    gaussian_noise,
    occlusion,
    salt_and_pepper,
    shift,
)

pytestmark = pytest.mark.unit

Seeded = Callable[[npt.NDArray[Any], float, np.random.Generator], npt.NDArray[Any]]


def _occlusion(X: npt.NDArray[Any], k: float, rng: np.random.Generator) -> npt.NDArray[Any]:
    return occlusion(X, int(k), rng)


SEEDED: list[tuple[Seeded, float]] = [
    (gaussian_noise, 3.0),
    (salt_and_pepper, 0.2),
    (_occlusion, 3),
]


@pytest.fixture
def images() -> npt.NDArray[np.float64]:
    return np.random.default_rng(0).integers(0, 17, size=(30, 64)).astype(np.float64)


@pytest.mark.parametrize(("perturb", "strength"), SEEDED)
def test_seeded_perturbations_respect_range_shape_and_seed(
    perturb: Seeded, strength: float, images: npt.NDArray[np.float64]
) -> None:
    first = perturb(images, strength, np.random.default_rng(7))
    again = perturb(images, strength, np.random.default_rng(7))
    other = perturb(images, strength, np.random.default_rng(8))
    assert first.shape == images.shape
    assert first.dtype == images.dtype
    assert first.min() >= 0.0
    assert first.max() <= 16.0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, images)


@pytest.mark.parametrize(("perturb", "strength"), SEEDED)
def test_strength_zero_is_identity_and_input_untouched(
    perturb: Seeded, strength: float, images: npt.NDArray[np.float64]
) -> None:
    before = images.copy()
    np.testing.assert_array_equal(perturb(images, 0, np.random.default_rng(1)), images)
    perturb(images, strength, np.random.default_rng(1))
    np.testing.assert_array_equal(images, before)


def test_gaussian_noise_is_clipped_at_both_ends() -> None:
    extremes = np.tile(np.array([0.0, 16.0] * 32), (50, 1))
    noisy = gaussian_noise(extremes, 4.0, np.random.default_rng(0))
    assert noisy.min() == 0.0
    assert noisy.max() == 16.0


def test_salt_and_pepper_sets_about_rate_pixels_to_extremes() -> None:
    mid = np.full((200, 64), 8.0)
    noisy = salt_and_pepper(mid, 0.1, np.random.default_rng(0))
    changed = noisy != 8.0
    assert set(np.unique(noisy[changed])) == {0.0, 16.0}
    assert 0.08 < changed.mean() < 0.12


def test_occlusion_blanks_exactly_one_patch_per_image() -> None:
    ones = np.ones((40, 64))
    blanked = occlusion(ones, 3, np.random.default_rng(0))
    assert np.all((blanked == 0).sum(axis=1) == 9)
    zeros = blanked.reshape(40, 8, 8) == 0
    rows = np.flatnonzero(zeros[0].any(axis=1))
    assert rows.max() - rows.min() == 2


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_shift_moves_a_single_pixel_and_zero_fills(direction: Direction) -> None:
    image = np.zeros((1, 8, 8))
    image[0, 4, 4] = 16.0
    moved = shift(image.reshape(1, 64), direction, 1).reshape(8, 8)
    expected = {"up": (3, 4), "down": (5, 4), "left": (4, 3), "right": (4, 5)}[direction]
    assert moved[expected] == 16.0
    assert moved.sum() == 16.0
    edge = np.ones((1, 64))
    shifted = shift(edge, direction, 1)
    assert shifted.shape == (1, 64)
    assert shifted.sum() == 56.0


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_shift_zero_is_identity(direction: Direction, images: npt.NDArray[np.float64]) -> None:
    np.testing.assert_array_equal(shift(images, direction, 0), images)


def test_bad_arguments_raise_clear_errors(images: npt.NDArray[np.float64]) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        gaussian_noise(images, -1.0, rng)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
        salt_and_pepper(images, 1.5, rng)
    with pytest.raises(ValueError, match="patch must be in"):
        occlusion(images, 9, rng)
    with pytest.raises(ValueError, match=r"expected a batch of shape \[n, 64\]"):
        shift(images.reshape(30, 8, 8), "up", 1)


def test_diagonal_shift_moves_a_pixel_along_both_axes_and_rejects_other_pairs() -> None:
    from stages.lib.perturbations import diagonal_shift

    image = np.zeros((1, 64))
    image[0, 3 * 8 + 4] = 9.0  # row 3, column 4
    moved = diagonal_shift(image, "up", "left", 2).reshape(8, 8)
    assert moved[1, 2] == 9.0
    assert moved.sum() == 9.0
    assert diagonal_shift(image, "down", "right", 4).sum() == 0.0  # column 8 is off the image
    with pytest.raises(ValueError, match="up/down then left/right"):
        diagonal_shift(image, "left", "up", 1)


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("up", (2, 4)),
        ("down_right", (4, 5)),
        ("up_left", (2, 3)),
        ("down_left", (4, 3)),
        ("right", (3, 5)),
    ],
)
def test_translate_names_the_eight_neighbours(direction: Translation, expected: Any) -> None:
    from stages.lib.perturbations import family_name, translate

    image = np.zeros((1, 64))
    image[0, 3 * 8 + 4] = 7.0  # row 3, column 4
    moved = translate(image, direction, 1).reshape(8, 8)
    assert moved[expected] == 7.0
    assert moved.sum() == 7.0
    prefix = "diagonal_shift_" if "_" in direction else "shift_"
    assert family_name(direction) == prefix + direction
    with pytest.raises(ValueError, match="direction must be one of"):
        translate(image, "sideways", 1)  # type: ignore[arg-type]


def test_ink_kept_is_whether_nothing_inked_leaves_the_frame() -> None:
    from stages.lib.perturbations import TRANSLATIONS, ink_kept

    image = np.zeros((3, 8, 8))
    image[0, 2:6, 2:6] = 5.0  # two blank rows and columns on every side
    image[1, 0, 3] = 1.0  # ink in the top row
    image[2, 3:5, 6] = 0.5  # faint ink one column from the right edge
    X = image.reshape(3, 64)
    assert all(ink_kept(X, d, 2)[0] for d in TRANSLATIONS)
    assert not ink_kept(X, "up", 3)[0]
    assert ink_kept(X, "down", 7)[1]  # row 0 moves to row 7: still inside
    assert not ink_kept(X, "up", 1)[1]
    assert not ink_kept(X, "up_left", 1)[1]
    assert ink_kept(X, "right", 1)[2]
    assert not ink_kept(X, "right", 2)[2]
    assert not ink_kept(X, "down_right", 2)[2]
