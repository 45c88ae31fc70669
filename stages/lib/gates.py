"""Gate verdicts with confidence intervals, shared by every stage that enforces a gate.

A verdict records the gate's threshold, the measured value, a confidence
interval (Wilson for a proportion, a seeded percentile bootstrap for a mean of
proportions), the rationale from ``params.yaml``, and ``marginal`` when the
interval straddles the threshold: the measurement alone cannot tell the model
is on the right side of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stages.lib.runner import StageError

Interval = tuple[float, float]


class GateError(StageError):
    """At least one gate failed; the message names each gate, its threshold and value."""


def wilson_interval(successes: int, n: int, level: float) -> Interval:
    """Wilson score interval of a binomial proportion (scipy's implementation)."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return (float(ci.low), float(ci.high))


# What model selection scores each candidate on: the validation accuracy that stands for each
# test gate (stages/select.py), in the order reports and figures show them.
SELECTION_CRITERIA = ("clean", "shift_mean", "shift_worst_direction", "shift_ink_kept", "noise")


def validation_trials(criterion: str, validation: Mapping[str, Any]) -> int | None:
    """Trials behind a validation accuracy the selection rule judges (None if not recorded):
    each image once; its shifted copies (``n_directions``) for the mean over directions; the
    (image, direction) pairs whose shift keeps all ink in the frame for ``shift_ink_kept``."""
    n_images = validation.get("n_images")
    if criterion == "shift_ink_kept":
        pairs = validation.get("n_ink_kept")
        return None if pairs is None else int(pairs)
    if n_images is None:
        return None
    if criterion == "shift_mean":
        return int(n_images) * int(validation.get("n_directions", 4))
    return int(n_images)


def accuracy_interval(correct: npt.NDArray[np.bool_], level: float) -> Interval:
    """Wilson interval of the fraction of ``True`` entries."""
    return wilson_interval(int(np.sum(correct)), int(correct.size), level)


def bootstrap_mean_interval(
    values: npt.NDArray[Any], level: float, resamples: int, seed: int
) -> Interval:
    """Percentile bootstrap interval of the mean of per-image ``values`` (seeded).

    For a mean over directions of shift accuracy, ``values`` holds each image's
    fraction of correctly read shifted copies, so resampling keeps each image's
    copies together (they are not independent trials).
    """
    from scipy.stats import bootstrap

    result = bootstrap(
        (np.asarray(values, dtype=np.float64),),
        np.mean,
        confidence_level=level,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def verdict(
    *,
    description: str,
    value: float | None,
    threshold: float,
    rationale: str,
    interval: Interval | None,
    kind: Literal["min", "max"] = "min",
    reason: str | None = None,
) -> dict[str, Any]:
    """One gate's verdict; an unmeasured gate (``value`` None) fails and says why."""
    if value is None:
        passed = False
    elif kind == "min":
        passed = value >= threshold
    else:
        passed = value <= threshold
    marginal = interval is not None and interval[0] < threshold < interval[1]
    record: dict[str, Any] = {
        "description": description,
        "kind": kind,
        "threshold": threshold,
        "value": value,
        "ci95": None if interval is None else [interval[0], interval[1]],
        "passed": passed,
        "marginal": marginal,
        "rationale": rationale,
    }
    if reason is not None:
        record["reason"] = reason
    return record


def status(record: Mapping[str, Any]) -> str:
    """``pass``, ``pass (marginal)``, ``FAIL`` or ``FAIL (marginal)``."""
    word = "pass" if record["passed"] else "FAIL"
    return f"{word} (marginal)" if record["marginal"] else word


def failures(prefix: str, verdicts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One message per failed gate: name, what was measured, the value and the threshold."""
    messages = []
    for name, record in verdicts.items():
        if record["passed"]:
            continue
        value = record["value"]
        shown = record.get("reason", "not measured") if value is None else f"{value:.4f}"
        relation = ">=" if record["kind"] == "min" else "<="
        messages.append(
            f"gate {prefix}.{name} failed: {record['description']} = {shown}, "
            f"needs {relation} {record['threshold']} ({record['rationale']})"
        )
    return messages


def enforce(prefix: str, verdicts: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise :class:`GateError` naming every failed gate."""
    messages = failures(prefix, verdicts)
    if messages:
        raise GateError("; ".join(messages))
