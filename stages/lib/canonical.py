"""Canonical numbers: the one rule that keeps float noise out of every hashed stage output.

Float64 linear algebra (BLAS, LAPACK) sums in an order that depends on the CPU's SIMD
width and on the kernel OpenBLAS picks, so two machines fit the same model with weights
that differ in their last bits (measured: up to 8e-16 relative). ``dvc.lock`` hashes the
outputs byte for byte, so that noise must never reach them. Two steps absorb it:

1. **Fitted estimators** (:func:`canonical_estimator`), right after ``fit`` and before
   anything evaluates, exports or saves them: every floating-point value the fit produced
   is rounded to float32 (kept in its float64 dtype), the precision the served ONNX model
   computes in anyway; values smaller than ``2**-FLUSH_BITS`` of their array's largest
   magnitude become 0 (a theoretical zero computed as cancellation residue, e.g. 1e-17,
   would otherwise keep its noise); ``-0.0`` becomes ``0.0``; training-only optimiser
   state is dropped. Hyperparameters are left as given.
2. **Reports** (:func:`canonical_json`): every float written to a JSON output is rounded to
   ``REPORT_SIGNIFICANT_DIGITS`` significant digits, but never finer than
   ``10**-REPORT_DECIMALS``: report quantities are differences and averages whose noise is
   absolute (measured: 6e-18 on permutation importances of 1e-9), so a value near 0 keeps
   only the digits above that noise, and residue reads 0.

Noise of 1e-16 relative moves a value across a float32 rounding boundary with a
probability of about 1e-9 per value, across a 6-digit boundary with about 1e-10, and
noise of 1e-17 absolute across a 12th-decimal boundary with about 1e-5; the evaluation
protocol documents this, and where ties (an argmax, a threshold) could still split two
machines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

REPORT_SIGNIFICANT_DIGITS = 6
REPORT_DECIMALS = 12
FLUSH_BITS = 26  # below 2**-26 of the largest term, a float32 sum cannot see a value
# Fitted state that only a later ``partial_fit`` / ``warm_start`` reads: an MLP's Adam moment
# estimates are running averages of gradients, many near zero, where noise is relatively large.
TRAINING_ONLY_STATE = ("_optimizer",)


def canonical_float(value: float) -> float:
    """``value`` at report precision: ``REPORT_SIGNIFICANT_DIGITS`` significant digits, but
    never finer than ``10**-REPORT_DECIMALS`` (so summation residue around 0 reads 0)."""
    if not math.isfinite(value):
        return value
    if abs(value) >= 10.0 ** (REPORT_SIGNIFICANT_DIGITS - 1 - REPORT_DECIMALS):
        return float(f"{value:.{REPORT_SIGNIFICANT_DIGITS - 1}e}")
    return round(value, REPORT_DECIMALS) + 0.0  # + 0.0: -0.0 reads 0.0


class ModelWeights:
    """Weights of a canonical fit that a JSON output carries exactly (not at report precision).

    They are float32 values already (:func:`canonical_estimator`), so their exact digits are
    as reproducible as the ONNX file that holds them; the service computes with them.
    """

    def __init__(self, values: npt.NDArray[Any]) -> None:
        array = np.asarray(values, dtype=np.float64)
        if not np.array_equal(array, array.astype(np.float32), equal_nan=True):
            raise ValueError("model weights must come from a canonical (float32-rounded) fit")
        self.values: list[Any] = array.tolist()


def canonical_json(payload: Any) -> Any:
    """``payload`` as JSON builtins, every float at report precision (numpy types converted)."""
    if isinstance(payload, bool) or payload is None or isinstance(payload, str):
        return payload
    if isinstance(payload, ModelWeights):
        return payload.values
    if isinstance(payload, (float, np.floating)):
        return canonical_float(float(payload))
    if isinstance(payload, (int, np.integer)):
        return int(payload)
    if isinstance(payload, np.bool_):
        return bool(payload)
    if isinstance(payload, np.ndarray):
        return canonical_json(payload.tolist())
    if isinstance(payload, Mapping):
        return {key: canonical_json(value) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [canonical_json(value) for value in payload]
    raise TypeError(f"cannot write {type(payload).__name__} to a JSON output")


def float32_array(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A float array rounded to float32 with residue flushed, in its own dtype."""
    if values.dtype.kind != "f" or values.dtype.itemsize <= 4:
        return values
    rounded = values.astype(np.float32).astype(values.dtype)
    finite = np.abs(rounded[np.isfinite(rounded)])
    if finite.size:
        floor = float(finite.max()) * 2.0**-FLUSH_BITS
        rounded[np.abs(rounded) < floor] = 0.0
    rounded += 0.0  # -0.0 -> 0.0
    return rounded


def float32_scalar(value: float) -> float:
    """``value`` rounded to float32 (a Python float; ``-0.0`` becomes ``0.0``)."""
    return float(np.float32(value)) + 0.0


def _is_estimator_state(value: object) -> bool:
    """An object of scikit-learn's whose attributes hold fitted state (estimators, helpers)."""
    return type(value).__module__.startswith("sklearn.") and hasattr(value, "__dict__")


def _canonical(value: Any, fitted: bool) -> Any:
    """``value`` with its fitted floats rounded; containers and estimators edited in place."""
    if _is_estimator_state(value):
        _canonical_attributes(value)
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            for index, item in np.ndenumerate(value):
                value[index] = _canonical(item, fitted)
            return value
        return float32_array(value) if fitted else value
    if isinstance(value, np.floating):
        return type(value)(float32_scalar(float(value))) if fitted else value
    if isinstance(value, float):
        return float32_scalar(value) if fitted else value
    if isinstance(value, list):
        value[:] = [_canonical(item, fitted) for item in value]
        return value
    if isinstance(value, tuple):
        return tuple(_canonical(item, fitted) for item in value)
    if isinstance(value, dict):
        for key in list(value):
            value[key] = _canonical(value[key], fitted)
        return value
    return value


def _canonical_attributes(estimator: Any) -> None:
    state = vars(estimator)
    for name in TRAINING_ONLY_STATE:
        state.pop(name, None)
    for name in list(state):
        # scikit-learn's convention: fitted attributes end in "_", private state starts with
        # one; hyperparameters have neither and stay as given (nested estimators are walked).
        fitted = name.endswith("_") or (name.startswith("_") and not name.startswith("__"))
        state[name] = _canonical(state[name], fitted)


def canonical_estimator(estimator: Any) -> Any:
    """Round ``estimator``'s fitted state in place (see the module docstring); returns it."""
    if not _is_estimator_state(estimator):
        raise TypeError(f"not a scikit-learn estimator: {type(estimator).__name__}")
    _canonical_attributes(estimator)
    return estimator
