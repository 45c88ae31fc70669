"""Robustness gates: verdicts with named thresholds, measurements and intervals, for the shift
families over 8 directions, silent errors, ink-kept shifts, noise and attacks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stages.lib.gates import failures
from stages.lib.params import RobustnessParams, parse_params
from stages.lib.perturbations import TRANSLATIONS
from stages.lib.stress import ShiftOutcome
from stages.robustness import evaluate_gates

pytestmark = pytest.mark.unit

RATIONALE = "A rationale naming the user need."


def _report(noise_accuracy: float, adversarial: dict[str, Any] | None) -> dict[str, Any]:
    attack = (
        {"status": "skipped: no attack budget"}
        if adversarial is None
        else {"status": "ok", "kind": "white-box (test)", "by_eps": {"1": adversarial}}
    )
    return {
        "n_test": 200,
        "stress": {"gaussian_noise": {"by_strength": {"2": {"accuracy": noise_accuracy}}}},
        "adversarial": {"subset_size": 100, "fgsm": attack},
    }


def _outcomes(
    correct: list[int], flagged: list[int] | None = None, kept: int = 50, n: int = 100
) -> dict[tuple[Any, int], ShiftOutcome]:
    """Per direction (the 8 in order) at 1 and 2 pixels: the first ``correct[i]`` images read
    right, the last ``flagged[i]`` flagged; at 2 pixels the first ``kept`` keep their ink."""
    flagged = flagged or [0] * len(TRANSLATIONS)
    index = np.arange(n)
    outcomes = {}
    for i, direction in enumerate(TRANSLATIONS):
        for pixels in (1, 2):
            right = index < correct[i]
            outcomes[direction, pixels] = ShiftOutcome(
                labels=np.where(right, 0, 1),
                correct=right,
                flagged=index >= n - flagged[i],
                kept=index < (kept if pixels == 2 else n),
            )
    return outcomes


def _gate(threshold: float) -> str:
    return f"{{threshold: {threshold}, rationale: {RATIONALE}}}"


def _params(
    shift: float, worst: float, noise: float, adversarial: float, silent: float = 0.05
) -> RobustnessParams:
    text = (
        "robustness:\n  bootstrap_resamples: 500\n  gates:\n"
        f"    shift_mean: {_gate(shift)}\n    shift_worst_direction: {_gate(worst)}\n"
        f"    shift_silent_error: {_gate(silent)}\n"
        f"    shift_ink_kept: {{pixels: 2, threshold: 0.95, rationale: {RATIONALE}}}\n"
        f"    noise: {_gate(noise)}\n    adversarial: {_gate(adversarial)}\n"
    )
    return parse_params(text).robustness


def test_gates_pass_and_fail_with_named_threshold_and_measurement() -> None:
    report = _report(0.75, {"adversarial_accuracy": 0.8})
    # Mean 0.96 over 8 directions, worst "left" (third) at 0.90; left's 10 errors: 4 flagged.
    shift = _outcomes([100, 96, 90, 98, 97, 95, 96, 96], [0, 0, 4, 0, 0, 0, 0, 0])
    verdicts = evaluate_gates(report, shift, _params(0.95, 0.93, 0.7, 0.99), 0, 0.95)
    assert verdicts["shift_mean"]["value"] == pytest.approx(0.96)
    assert "over 8 directions" in verdicts["shift_mean"]["description"]
    assert verdicts["shift_mean"]["passed"]
    low, high = verdicts["shift_mean"]["ci95"]
    assert low < 0.96 < high
    worst = verdicts["shift_worst_direction"]
    assert worst["value"] == pytest.approx(0.90)
    assert "lowest direction (left)" in worst["description"]
    assert not worst["passed"]
    # Silent errors: wrong and not flagged. Left: 10 wrong, 4 of them flagged -> 0.06; but
    # up_right has 5 wrong, none flagged -> 0.05; left is the highest, over 0.05.
    silent = verdicts["shift_silent_error"]
    assert (silent["kind"], silent["value"]) == ("max", pytest.approx(0.06))
    assert "(wrong and not flagged; left)" in silent["description"]
    assert not silent["passed"]
    # 2 pixels, 50 images per direction keep their ink: 8 x 50 pairs, as read at 2 pixels.
    kept = verdicts["shift_ink_kept"]
    assert "(400 image-direction pairs of 8 directions)" in kept["description"]
    assert kept["value"] == pytest.approx(1.0)
    assert verdicts["noise"]["passed"]
    assert not verdicts["adversarial"]["passed"]
    assert all(v["rationale"] == RATIONALE for v in verdicts.values())
    assert failures("robustness.gates", verdicts) == [
        "gate robustness.gates.shift_worst_direction failed: lowest direction (left) at a "
        f"1-pixel shift = 0.9000, needs >= 0.93 ({RATIONALE})",
        "gate robustness.gates.shift_silent_error failed: highest silent-error rate (wrong and "
        f"not flagged; left) at a 1-pixel shift = 0.0600, needs <= 0.05 ({RATIONALE})",
        "gate robustness.gates.adversarial failed: fgsm accuracy at eps=1 (white-box) = 0.8000, "
        f"needs >= 0.99 ({RATIONALE})",
    ]
    at_threshold = evaluate_gates(report, shift, _params(0.96, 0.9, 0.75, 0.8, 0.06), 0, 0.95)
    assert failures("robustness.gates", at_threshold) == []
    # Each value sits exactly on its threshold, inside its interval: marginal.
    assert at_threshold["noise"]["marginal"]
    assert at_threshold["shift_silent_error"]["marginal"]


def test_the_ink_kept_gate_reads_only_the_pairs_that_keep_their_ink() -> None:
    report = _report(0.9, {"adversarial_accuracy": 0.9})
    # The first 90 images are read right; only the first 50 keep their ink at 2 pixels.
    verdicts = evaluate_gates(report, _outcomes([90] * 8), _params(0.5, 0.5, 0.5, 0.5), 0, 0.95)
    assert verdicts["shift_ink_kept"]["value"] == 1.0
    verdicts = evaluate_gates(
        report, _outcomes([40] * 8), _params(0.1, 0.1, 0.5, 0.5, 1.0), 0, 0.95
    )
    assert verdicts["shift_ink_kept"]["value"] == pytest.approx(0.8)  # 40 of the 50
    assert not verdicts["shift_ink_kept"]["passed"]
    none_kept = evaluate_gates(
        report, _outcomes([90] * 8, kept=0), _params(0.5, 0.5, 0.5, 0.5), 0, 0.95
    )
    assert none_kept["shift_ink_kept"]["value"] is None
    assert not none_kept["shift_ink_kept"]["passed"]  # unmeasured is not passed


def test_unmeasured_adversarial_gate_fails_and_says_why() -> None:
    verdicts = evaluate_gates(
        _report(0.9, None), _outcomes([100] * 8), _params(0.9, 0.9, 0.5, 0.5), 0, 0.95
    )
    adversarial = verdicts["adversarial"]
    assert adversarial["value"] is None
    assert not adversarial["passed"]
    (message,) = failures("robustness.gates", verdicts)
    assert "gate robustness.gates.adversarial failed" in message
    assert "= not measured: skipped: no attack budget" in message


def test_gate_strength_must_be_on_the_grid() -> None:
    from stages.lib.params import ParamsError

    with pytest.raises(ParamsError, match=r"gates.adversarial.eps must be one of attack_eps"):
        parse_params("robustness:\n  attack_eps: [0, 2]\n")
    with pytest.raises(ParamsError, match=r"gates.shift_mean.pixels must be one of shift_pixels"):
        parse_params("robustness:\n  shift_pixels: [0, 2]\n")
