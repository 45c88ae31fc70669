"""Training-split augmentation and the validation split: deterministic, originals first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.augment import augment, copies_per_image, validation_split
from stages.lib.params import AugmentParams, parse_params
from stages.lib.perturbations import translate

pytestmark = pytest.mark.unit

Images = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


@pytest.fixture(scope="module")
def images() -> Images:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:120].astype(np.float64), y[:120].astype(np.int64)


def test_originals_first_then_shifts_then_noise(images: Images) -> None:
    X, y = images
    params = AugmentParams()  # 1 pixel x 8 directions, sigma 2 x 2 copies
    X_aug, y_aug = augment(X, y, params, seed=3)
    n = len(X)
    assert copies_per_image(params) == 1 + 8 + 2
    assert X_aug.shape == (11 * n, 64)
    assert y_aug.shape == (11 * n,)
    np.testing.assert_array_equal(X_aug[:n], X)
    assert params.shift_directions[4:] == ("up_left", "up_right", "down_left", "down_right")
    for i, direction in enumerate(params.shift_directions, start=1):
        np.testing.assert_array_equal(X_aug[i * n : (i + 1) * n], translate(X, direction, 1))
    # A diagonal copy moves one row and one column at once.
    up_left = X_aug[5 * n : 6 * n].reshape(n, 8, 8)
    np.testing.assert_array_equal(up_left[:, :7, :7], X.reshape(n, 8, 8)[:, 1:, 1:])
    noisy = X_aug[9 * n :]
    assert noisy.min() >= 0.0
    assert noisy.max() <= 16.0
    assert 1.0 < float(np.std(noisy[:n] - X)) < 2.0  # sigma 2, clipped at 0 and 16
    assert not np.array_equal(noisy[:n], noisy[n:])  # two different noise copies
    # Labels follow their images in every block.
    np.testing.assert_array_equal(y_aug, np.tile(y, 11))


def test_augmentation_is_deterministic_in_the_seed(images: Images) -> None:
    X, y = images
    first, _ = augment(X, y, AugmentParams(), seed=3)
    again, _ = augment(X, y, AugmentParams(), seed=3)
    other, _ = augment(X, y, AugmentParams(), seed=4)
    np.testing.assert_array_equal(first, again)
    n = len(X)
    np.testing.assert_array_equal(first[: 9 * n], other[: 9 * n])  # shifts take no randomness
    assert not np.array_equal(first[9 * n :], other[9 * n :])


@pytest.mark.parametrize(
    ("text", "rows_per_image"),
    [
        ("{shift_pixels: [1, 2], noise_copies: 1}", 1 + 16 + 1),
        ("{shift_directions: [left], noise_sigmas: [1.0, 2.0], noise_copies: 3}", 1 + 1 + 6),
        ("{shift_directions: [up, down, left, right]}", 1 + 4 + 2),
        ("{noise_copies: 0}", 1 + 8),
        ("{shift_pixels: [], shift_directions: [], noise_sigmas: []}", 1),
    ],
)
def test_rows_per_image_match_the_params(images: Images, text: str, rows_per_image: int) -> None:
    X, y = images
    params = parse_params(f"train: {{augment: {text}}}").train.augment
    X_aug, y_aug = augment(X, y, params, seed=0)
    assert copies_per_image(params) == rows_per_image
    assert len(X_aug) == len(y_aug) == rows_per_image * len(X)


def test_disabled_is_an_identity_copy(images: Images) -> None:
    X, y = images
    params = AugmentParams(enabled=False)
    X_aug, y_aug = augment(X, y, params, seed=0)
    assert copies_per_image(params) == 1
    np.testing.assert_array_equal(X_aug, X)
    np.testing.assert_array_equal(y_aug, y)
    X_aug[0, 0] = 99.0
    assert X[0, 0] != 99.0  # a copy, not a view of the caller's data


def test_inputs_are_not_modified(images: Images) -> None:
    X, y = images
    X_before, y_before = X.copy(), y.copy()
    augment(X, y, AugmentParams(), seed=0)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_validation_split_is_stratified_disjoint_and_seeded() -> None:
    y = np.repeat(np.arange(10), 50)
    fit, validation = validation_split(y, 0.2, seed=42)
    assert len(validation) == 100
    assert len(fit) == 400
    assert np.intersect1d(fit, validation).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, validation])), np.arange(500))
    assert np.all(np.diff(fit) > 0)
    assert np.all(np.diff(validation) > 0)
    np.testing.assert_array_equal(np.bincount(y[validation]), np.full(10, 10))
    again = validation_split(y, 0.2, seed=42)
    np.testing.assert_array_equal(again[1], validation)
    assert not np.array_equal(validation_split(y, 0.2, seed=43)[1], validation)


def test_the_test_split_never_reaches_training(tmp_path: Path) -> None:
    """Selection augments and validates from train.npz alone: without test.npz it still runs."""
    from sklearn.datasets import load_digits

    from stages.lib.artifacts import read_json, write_npz
    from stages.select import main

    X, y = load_digits(return_X_y=True)
    data = tmp_path / "data"
    write_npz(data / "train.npz", {"X": X[:400].astype(np.float64), "y": y[:400].astype(np.int64)})
    params = tmp_path / "params.yaml"
    params.write_text(
        "train:\n  augment: {noise_copies: 1}\n  selection: {candidates: [logistic_regression]}\n",
        encoding="utf-8",
    )
    report = tmp_path / "model_selection.json"
    args = ["--params", str(params), "--data-dir", str(data), "--report", str(report)]
    assert main(args) == 0
    selection = read_json(report)
    assert not (data / "test.npz").exists()
    assert selection["data"]["n_fit_images"] + selection["data"]["n_validation_images"] == 400
    assert selection["data"]["n_fit_rows"] == 10 * selection["data"]["n_fit_images"]
