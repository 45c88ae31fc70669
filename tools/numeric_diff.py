"""The largest absolute and relative difference between paired numbers (tools/lock_diff.py).

Two numbers differ unless they are equal or both NaN. For a differing pair the absolute
difference is ``|old - new|`` and the relative difference ``|old - new| / max(|old|, |new|)``
(so 0 -> 1 is a relative difference of 1). A NaN or infinity on one side only is an infinite
difference.

A difference is numeric noise when its relative difference is at most the relative threshold
or its absolute difference at most ``NOISE_ATOL``:

- ``NOISE_RTOL`` = 1e-9: far above float64 rounding (about 1e-16 per operation; sums in a
  different order, as another BLAS kernel does them, move results by a few 1e-16) and far below
  any change a model or metric shows. For data stored in a narrower float type (float32 ONNX
  weights) it is ``NOISE_ULPS`` units in the last place of that type (float32: 1.9e-6), since
  such a value cannot be stored any closer;
- ``NOISE_ATOL`` = 1e-12: a float64 result near zero, made by cancellation, carries the
  rounding of its terms, not of itself (a permutation importance of 1.4e-9 moved by 4.5e-17
  between two machines: relative 4e-9, absolute far below anything reported).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NOISE_RTOL = 1e-9
NOISE_ATOL = 1e-12
NOISE_ULPS = 16


def noise_threshold(rtol: float, dtype: npt.DTypeLike | None = None) -> float:
    """The relative difference up to which a change of data of ``dtype`` is noise."""
    if dtype is not None and np.issubdtype(dtype, np.floating):
        return max(rtol, NOISE_ULPS * float(np.finfo(dtype).eps))
    return rtol


def fmt(value: float) -> str:
    """A number in a report: three significant digits."""
    return f"{value:.3g}"


@dataclass(frozen=True)
class Pair:
    """One pair of numbers that differ."""

    at: str
    old: float
    new: float
    absolute: float
    relative: float

    def describe(self) -> str:
        return f"{fmt(self.relative)} at {self.at} ({self.old!r} -> {self.new!r})"


@dataclass(frozen=True)
class NumericDiff:
    """How a set of paired numbers differs (only made when at least one pair differs)."""

    differing: int
    total: int | None  # None: only the differing numbers were paired (JSON, text)
    beyond: int  # pairs beyond both noise thresholds
    largest_abs: Pair
    largest_rel: Pair
    worst: Pair | None  # the largest relative difference among the pairs beyond noise
    rtol: float
    atol: float

    @property
    def noise(self) -> bool:
        return self.beyond == 0

    def describe(self) -> str:
        of = "" if self.total is None else f" of {self.total}"
        text = (
            f"{self.differing}{of} differ, {self.beyond} beyond noise;"
            f" max abs diff {fmt(self.largest_abs.absolute)} at {self.largest_abs.at};"
            f" max rel diff {self.largest_rel.describe()}"
        )
        if self.worst is not None and self.worst != self.largest_rel:
            text += f"; largest beyond noise {self.worst.describe()}"
        return text


def compare_numbers(
    old: npt.ArrayLike,
    new: npt.ArrayLike,
    locate: Callable[[int], str],
    rtol: float,
    atol: float = NOISE_ATOL,
    counted: bool = True,
) -> NumericDiff | None:
    """Compare two same-shaped numeric arrays; ``locate`` names a flat index. None: all equal.
    ``counted=False``: the arrays hold only the pairs that differ, so no total is reported."""
    a = np.asarray(old, dtype=np.float64).ravel()
    b = np.asarray(new, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cannot pair {a.size} numbers with {b.size}")
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    where = np.flatnonzero(~same)
    if where.size == 0:
        return None
    da, db = a[where], b[where]
    finite = np.isfinite(da) & np.isfinite(db)
    with np.errstate(all="ignore"):
        absolute = np.where(finite, np.abs(da - db), np.inf)
        relative = np.where(finite, absolute / np.maximum(np.abs(da), np.abs(db)), np.inf)
    beyond = (relative > rtol) & (absolute > atol)

    def pair(i: int) -> Pair:
        at = locate(int(where[i]))
        return Pair(at, float(da[i]), float(db[i]), float(absolute[i]), float(relative[i]))

    worst = None
    if beyond.any():
        worst = pair(int(np.flatnonzero(beyond)[np.argmax(relative[beyond])]))
    return NumericDiff(
        differing=int(where.size),
        total=int(a.size) if counted else None,
        beyond=int(beyond.sum()),
        largest_abs=pair(int(np.argmax(absolute))),
        largest_rel=pair(int(np.argmax(relative))),
        worst=worst,
        rtol=rtol,
        atol=atol,
    )


def index_locator(shape: Sequence[int]) -> Callable[[int], str]:
    """Names a flat index of an array of ``shape`` as ``[i, j]``."""

    def locate(flat: int) -> str:
        if not shape:
            return "[]"
        return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, tuple(shape))) + "]"

    return locate


@dataclass(frozen=True)
class Noise:
    """The noise thresholds of one comparison (``--rtol``, ``--atol``)."""

    rtol: float = NOISE_RTOL
    atol: float = NOISE_ATOL

    def compare(
        self,
        old: npt.ArrayLike,
        new: npt.ArrayLike,
        locate: Callable[[int], str],
        dtype: npt.DTypeLike | None = None,
        counted: bool = True,
    ) -> NumericDiff | None:
        rtol = noise_threshold(self.rtol, dtype)
        return compare_numbers(old, new, locate, rtol, self.atol, counted)

    def describe(self) -> str:
        float32 = noise_threshold(self.rtol, np.float32)
        return (
            f"numeric noise: relative difference <= {self.rtol:g} (float32 data: {fmt(float32)})"
            f" or absolute difference <= {self.atol:g}"
        )
