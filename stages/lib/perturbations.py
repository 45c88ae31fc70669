"""Pure, seeded image perturbations for the robustness stage.

Every function takes a batch of flattened 8x8 digits ``X`` (float, pixel scale
0..16), returns a new array of the same shape and dtype inside 0..16, and is
the identity at strength 0. Randomness comes only from the ``rng`` argument.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from stages.lib.params import ALL_DIRECTIONS
from stages.lib.params import Direction as Translation

PIXEL_MIN = 0.0
PIXEL_MAX = 16.0
IMAGE_SIDE = 8

Direction = Literal["up", "down", "left", "right"]
DIRECTIONS: tuple[Direction, ...] = ("up", "down", "left", "right")
DIAGONALS: tuple[tuple[Direction, Direction], ...] = (
    ("up", "left"),
    ("up", "right"),
    ("down", "left"),
    ("down", "right"),
)
# Every one-pixel neighbour: the 4 axes, then the 4 diagonals ("up_left": up and left alike).
TRANSLATIONS: tuple[Translation, ...] = ALL_DIRECTIONS
__all__ = [
    "DIAGONALS",
    "DIRECTIONS",
    "IMAGE_SIDE",
    "PIXEL_MAX",
    "PIXEL_MIN",
    "TRANSLATIONS",
    "Direction",
    "Translation",
    "diagonal_shift",
    "family_name",
    "gaussian_noise",
    "ink_kept",
    "occlusion",
    "salt_and_pepper",
    "shift",
    "translate",
]


def _as_images(X: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """View a ``[n, 64]`` batch as ``[n, 8, 8]`` images, with a clear error otherwise."""
    if X.ndim != 2 or X.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
        raise ValueError(f"expected a batch of shape [n, 64], got {list(X.shape)}")
    return X.reshape(len(X), IMAGE_SIDE, IMAGE_SIDE)


def gaussian_noise(X: npt.NDArray[Any], sigma: float, rng: np.random.Generator) -> npt.NDArray[Any]:
    """Add N(0, sigma^2) noise to every pixel, then clip to 0..16."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    _as_images(X)
    if sigma == 0:
        return X.copy()
    noisy = X + rng.normal(0.0, sigma, size=X.shape)
    return np.clip(noisy, PIXEL_MIN, PIXEL_MAX).astype(X.dtype, copy=False)


def salt_and_pepper(X: npt.NDArray[Any], rate: float, rng: np.random.Generator) -> npt.NDArray[Any]:
    """Set a ``rate`` fraction of pixels (on average) to 0 or 16, half each."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    _as_images(X)
    if rate == 0:
        return X.copy()
    hit = rng.random(X.shape) < rate
    salt = rng.random(X.shape) < 0.5
    out = X.copy()
    out[hit & salt] = PIXEL_MAX
    out[hit & ~salt] = PIXEL_MIN
    return out


def shift(X: npt.NDArray[Any], direction: Direction, pixels: int) -> npt.NDArray[Any]:
    """Translate each image by ``pixels`` in ``direction``; vacated pixels become 0."""
    if not 0 <= pixels <= IMAGE_SIDE:
        raise ValueError(f"pixels must be in [0, {IMAGE_SIDE}], got {pixels}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    images = _as_images(X)
    out = np.zeros_like(images)
    p = pixels
    if p == 0:
        out[:] = images
    elif direction == "up":
        out[:, : IMAGE_SIDE - p, :] = images[:, p:, :]
    elif direction == "down":
        out[:, p:, :] = images[:, : IMAGE_SIDE - p, :]
    elif direction == "left":
        out[:, :, : IMAGE_SIDE - p] = images[:, :, p:]
    else:
        out[:, :, p:] = images[:, :, : IMAGE_SIDE - p]
    return out.reshape(X.shape)


def diagonal_shift(
    X: npt.NDArray[Any], vertical: Direction, horizontal: Direction, pixels: int
) -> npt.NDArray[Any]:
    """Translate each image by ``pixels`` vertically and the same horizontally (vacated = 0)."""
    if vertical not in ("up", "down") or horizontal not in ("left", "right"):
        raise ValueError(f"expected up/down then left/right, got {vertical!r}, {horizontal!r}")
    return shift(shift(X, vertical, pixels), horizontal, pixels)


def family_name(direction: Translation) -> str:
    """The robustness report's key of a shift family: ``shift_up``, ``diagonal_shift_up_left``."""
    return f"shift_{direction}" if direction in DIRECTIONS else f"diagonal_shift_{direction}"


def translate(X: npt.NDArray[Any], direction: Translation, pixels: int) -> npt.NDArray[Any]:
    """:func:`shift` for an axis direction, :func:`diagonal_shift` for ``vertical_horizontal``."""
    if direction in DIRECTIONS:
        return shift(X, direction, pixels)
    vertical, _, horizontal = direction.partition("_")
    if direction not in TRANSLATIONS:
        raise ValueError(f"direction must be one of {TRANSLATIONS}, got {direction!r}")
    return diagonal_shift(X, cast(Direction, vertical), cast(Direction, horizontal), pixels)


def ink_kept(X: npt.NDArray[Any], direction: Translation, pixels: int) -> npt.NDArray[np.bool_]:
    """Per image: whether :func:`translate` keeps all of its ink (no pixel > 0 leaves the frame).

    Computed exactly: moving the image back restores it iff every pixel that left was 0.
    """
    back = {"up": "down", "down": "up", "left": "right", "right": "left"}
    opposite = "_".join(back[part] for part in direction.split("_"))
    restored = translate(translate(X, direction, pixels), cast(Translation, opposite), pixels)
    return np.asarray(np.all(restored == X, axis=1))


def occlusion(X: npt.NDArray[Any], patch: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    """Blank (set to 0) one ``patch`` x ``patch`` square per image at a random position."""
    if not 0 <= patch <= IMAGE_SIDE:
        raise ValueError(f"patch must be in [0, {IMAGE_SIDE}], got {patch}")
    images = _as_images(X)
    if patch == 0:
        return X.copy()
    out = images.copy()
    rows = rng.integers(0, IMAGE_SIDE - patch + 1, size=len(X))
    cols = rng.integers(0, IMAGE_SIDE - patch + 1, size=len(X))
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        out[i, r : r + patch, c : c + patch] = PIXEL_MIN
    return out.reshape(X.shape)
