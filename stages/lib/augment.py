"""Training-data augmentation and the validation split carved from the training data.

Both are pure functions of their inputs and ``seed``: the same params give the
same rows in the same order, so every stage that needs them (model selection,
training, the OOD detector, the transfer-attack surrogate) sees identical data.
The test split never passes through here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.params import AugmentParams
from stages.lib.perturbations import gaussian_noise, translate

# Salts keep the augmentation's random streams apart from every other seeded use.
_NOISE_SALT = 7001
_VALIDATION_SALT = 7002


def augment(
    X: npt.NDArray[Any], y: npt.NDArray[Any], params: AugmentParams, seed: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The originals, then one shifted copy per (offset, direction), then the noisy copies.

    A diagonal direction (``up_left``, ...) moves the copy ``offset`` pixels along both axes.

    Noise copy ``k`` of sigma ``i`` draws from ``default_rng([seed, salt, i, k])``.
    """
    if not params.enabled:
        return X.copy(), y.copy()
    parts = [X]
    for pixels in params.shift_pixels:
        parts.extend(translate(X, direction, pixels) for direction in params.shift_directions)
    for i, sigma in enumerate(params.noise_sigmas):
        for k in range(params.noise_copies):
            rng = np.random.default_rng([seed, _NOISE_SALT, i, k])
            parts.append(gaussian_noise(X, sigma, rng))
    return np.concatenate(parts).astype(X.dtype, copy=False), np.tile(y, len(parts))


def copies_per_image(params: AugmentParams) -> int:
    """How many rows each original image becomes (itself included)."""
    if not params.enabled:
        return 1
    shifts = len(params.shift_pixels) * len(params.shift_directions)
    return 1 + shifts + len(params.noise_sigmas) * params.noise_copies


def validation_split(
    y: npt.NDArray[Any], size: float, seed: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Stratified (fit, validation) row indices of the training split, each sorted."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(y))
    fit, validation = train_test_split(
        indices, test_size=size, stratify=y, random_state=_seed32(seed, _VALIDATION_SALT)
    )
    return np.sort(fit), np.sort(validation)


def _seed32(seed: int, salt: int) -> int:
    """A 32-bit seed derived from ``seed`` and ``salt`` (sklearn wants one integer)."""
    return int(np.random.default_rng([seed, salt]).integers(0, 2**31 - 1))
