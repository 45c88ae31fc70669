"""Gate verdicts: Wilson and bootstrap intervals, marginal verdicts, min/max gates, messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.lib.gates import (
    GateError,
    accuracy_interval,
    bootstrap_mean_interval,
    enforce,
    failures,
    status,
    verdict,
    wilson_interval,
)
from stages.lib.runner import StageError

pytestmark = pytest.mark.unit

RATIONALE = "API clients need clean digits read correctly."


def _wilson_closed_form(
    successes: int, n: int, z: float = 1.959963984540054
) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (8, 10, (0.4902, 0.9433)),  # the textbook example (Newcombe 1998)
        (50, 100, (0.4038, 0.5962)),
        (441, 450, (0.9624, 0.9894)),
        (10, 10, (0.7225, 1.0)),
        (0, 10, (0.0, 0.2775)),
    ],
)
def test_wilson_interval_matches_known_values(
    successes: int, n: int, expected: tuple[float, float]
) -> None:
    low, high = wilson_interval(successes, n, 0.95)
    assert (low, high) == pytest.approx(expected, abs=5e-5)
    assert (low, high) == pytest.approx(_wilson_closed_form(successes, n), abs=1e-9)


def test_wilson_interval_widens_with_the_level_and_is_total_without_data() -> None:
    low95, high95 = wilson_interval(90, 100, 0.95)
    low99, high99 = wilson_interval(90, 100, 0.99)
    assert low99 < low95 < 0.9 < high95 < high99
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)


def test_accuracy_interval_counts_true_entries() -> None:
    correct = np.array([True] * 8 + [False] * 2)
    assert accuracy_interval(correct, 0.95) == wilson_interval(8, 10, 0.95)


def test_bootstrap_interval_of_a_mean_is_seeded_and_brackets_the_mean() -> None:
    values = np.random.default_rng(0).choice([0.5, 0.75, 1.0], size=400, p=[0.1, 0.2, 0.7])
    low, high = bootstrap_mean_interval(values, 0.95, 1000, seed=1)
    assert low < float(values.mean()) < high
    assert (low, high) == bootstrap_mean_interval(values, 0.95, 1000, seed=1)
    assert (low, high) != bootstrap_mean_interval(values, 0.95, 1000, seed=2)
    # Standard error of the mean, about 0.0095 here: a 95 % interval spans about 4 of them.
    standard_error = float(values.std(ddof=1)) / math.sqrt(len(values))
    assert 3.0 * standard_error < high - low < 5.0 * standard_error


def _min_gate(value: float | None, interval: tuple[float, float] | None) -> dict[str, object]:
    return verdict(
        description="accuracy on the clean test split",
        value=value,
        threshold=0.975,
        rationale=RATIONALE,
        interval=interval,
    )


def test_min_gate_passes_at_or_above_its_threshold() -> None:
    assert _min_gate(0.975, None)["passed"] is True
    assert _min_gate(0.98, (0.976, 0.99))["passed"] is True
    assert _min_gate(0.97, (0.96, 0.974))["passed"] is False


def test_marginal_when_the_interval_straddles_the_threshold() -> None:
    passing = _min_gate(0.9867, (0.9712, 0.9939))
    assert (passing["passed"], passing["marginal"]) == (True, True)
    assert status(passing) == "pass (marginal)"
    failing = _min_gate(0.97, (0.95, 0.98))
    assert (failing["passed"], failing["marginal"]) == (False, True)
    assert status(failing) == "FAIL (marginal)"
    clear = _min_gate(0.99, (0.98, 0.995))
    assert (clear["marginal"], status(clear)) == (False, "pass")
    assert status(_min_gate(0.9, (0.85, 0.95))) == "FAIL"
    assert clear["ci95"] == [0.98, 0.995]
    assert clear["rationale"] == RATIONALE


def test_max_gate_passes_at_or_below_its_threshold() -> None:
    def fpr(value: float) -> dict[str, object]:
        return verdict(
            description="fraction of clean test digits flagged",
            value=value,
            threshold=0.02,
            rationale=RATIONALE,
            interval=None,
            kind="max",
        )

    assert fpr(0.01)["passed"] is True
    assert fpr(0.02)["passed"] is True
    assert fpr(0.03)["passed"] is False
    assert fpr(0.03)["kind"] == "max"


def test_unmeasured_gate_fails_with_its_reason() -> None:
    record = verdict(
        description="fgsm accuracy at eps=1",
        value=None,
        threshold=0.8,
        rationale=RATIONALE,
        interval=None,
        reason="not measured: skipped",
    )
    assert record["passed"] is False
    assert record["marginal"] is False
    (message,) = failures("robustness.gates", {"adversarial": record})
    assert message == (
        "gate robustness.gates.adversarial failed: fgsm accuracy at eps=1 = not measured: "
        f"skipped, needs >= 0.8 ({RATIONALE})"
    )


def test_failure_message_names_gate_threshold_value_and_rationale() -> None:
    verdicts = {
        "clean_accuracy": _min_gate(0.9512, (0.93, 0.966)),
        "other": _min_gate(0.99, (0.98, 0.995)),
        "max_false_positive_rate": verdict(
            description="fraction of clean test digits flagged",
            value=0.05,
            threshold=0.02,
            rationale="Genuine digits must rarely be flagged.",
            interval=(0.03, 0.07),
            kind="max",
        ),
    }
    assert failures("evaluate.gates", verdicts) == [
        "gate evaluate.gates.clean_accuracy failed: accuracy on the clean test split = 0.9512, "
        f"needs >= 0.975 ({RATIONALE})",
        "gate evaluate.gates.max_false_positive_rate failed: fraction of clean test digits "
        "flagged = 0.0500, needs <= 0.02 (Genuine digits must rarely be flagged.)",
    ]
    with pytest.raises(GateError) as excinfo:
        enforce("evaluate.gates", verdicts)
    assert str(excinfo.value) == "; ".join(failures("evaluate.gates", verdicts))
    assert isinstance(excinfo.value, StageError)  # the stage runner turns it into exit code 1


def test_enforce_is_silent_when_every_gate_passes() -> None:
    enforce("evaluate.gates", {"clean_accuracy": _min_gate(0.99, (0.98, 0.995))})
