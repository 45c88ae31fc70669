"""Move floats by a few ulps, the size of the noise another CPU's BLAS kernel leaves."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def nudge(values: npt.NDArray[Any], ulps: int) -> npt.NDArray[Any]:
    """``values`` moved ``ulps`` representable steps up (positive) or down (negative)."""
    moved = np.array(values, dtype=values.dtype, copy=True)
    target = np.inf if ulps > 0 else -np.inf
    for _ in range(abs(ulps)):
        moved = np.nextafter(moved, target)
    return moved


def perturb(payload: Any, ulps: int) -> Any:
    """A copy of a JSON-like payload (or an array) with every float moved ``ulps`` ulps."""
    if isinstance(payload, np.ndarray):
        return nudge(payload, ulps) if payload.dtype.kind == "f" else payload.copy()
    if isinstance(payload, bool):
        return payload
    if isinstance(payload, (float, np.floating)):
        return float(nudge(np.array([float(payload)]), ulps)[0])
    if isinstance(payload, dict):
        return {key: perturb(value, ulps) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [perturb(value, ulps) for value in payload]
    return payload


def perturb_estimator(estimator: Any, ulps: int) -> Any:
    """Move every fitted float of a scikit-learn estimator (and its nested ones) in place."""
    if type(estimator).__module__.startswith("sklearn.") and hasattr(estimator, "__dict__"):
        for name, value in vars(estimator).items():
            if name.endswith("_") or (name.startswith("_") and not name.startswith("__")):
                setattr(estimator, name, _perturb_state(value, ulps))
            else:
                perturb_estimator(value, ulps)
    elif isinstance(estimator, (list, tuple)):
        for item in estimator:
            perturb_estimator(item, ulps)
    return estimator


def _perturb_state(value: Any, ulps: int) -> Any:
    if type(value).__module__.startswith("sklearn."):
        return perturb_estimator(value, ulps)
    if isinstance(value, list):
        return [_perturb_state(item, ulps) for item in value]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return nudge(value, ulps)
    if isinstance(value, (float, np.floating)):  # keeps np.float64 as np.float64
        return type(value)(nudge(np.array([value], dtype=np.float64), ulps)[0])
    return value
