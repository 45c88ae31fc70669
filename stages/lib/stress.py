"""Stress tests of the served model and detector: accuracy, flag rate and silent errors.

Every stress family (Gaussian noise, salt-and-pepper, occlusion, shifts in the 8 directions)
is scored at every strength of its grid on the whole test split. A row is **flagged** when the
served out-of-distribution detector says so (``ood_score > 1``), and a **silent error** when
the model reads it wrong and the detector does not flag it: the answer a client gets with
confidence and no warning. A shift's rows are also split by whether the shift keeps all of the
image's ink inside the frame (computed per image, :func:`stages.lib.perturbations.ink_kept`):
the ink-kept rows are a whole digit moved, the ink-cut rows a digit with a part missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.adversarial import N_CLASSES, strength_key
from stages.lib.ink_cut import ink_cut
from stages.lib.params import Direction, RobustnessParams
from stages.lib.perturbations import (
    TRANSLATIONS,
    family_name,
    gaussian_noise,
    ink_kept,
    occlusion,
    salt_and_pepper,
    translate,
)

Predict = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
_CUT_NOISE_SALT = 7401


@dataclass(frozen=True)
class Served:
    """The served artifacts as functions of a batch: labels and probabilities of the model,
    the detector's flags, and the flags of its PCA part alone (without the ink-cut rule)."""

    predict: Predict
    predict_proba: Predict
    flag: Predict
    flag_pca: Predict


@dataclass(frozen=True)
class ShiftOutcome:
    """Per test image, for one direction and distance: the label read, whether it is right,
    whether the detector flagged it, and whether the shift kept all its ink in the frame."""

    labels: npt.NDArray[Any]
    correct: npt.NDArray[np.bool_]
    flagged: npt.NDArray[np.bool_]
    kept: npt.NDArray[np.bool_]


def rates(correct: npt.NDArray[np.bool_], flagged: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """Rows, accuracy, flag rate and silent-error rate of a subset (None when it is empty)."""
    n = int(correct.size)
    if n == 0:
        return {"n": 0, "accuracy": None, "flag_rate": None, "silent_error_rate": None}
    return {
        "n": n,
        "accuracy": float(np.mean(correct)),
        "flag_rate": float(np.mean(flagged)),
        "silent_error_rate": float(np.mean(~correct & ~flagged)),
    }


def scores(
    y_true: npt.NDArray[Any],
    y_pred: npt.NDArray[Any],
    y_clean: npt.NDArray[Any],
    flagged: npt.NDArray[np.bool_],
) -> dict[str, float]:
    """Accuracy, macro-F1, flip rate against the clean predictions, flag and silent-error rate."""
    from sklearn.metrics import f1_score

    wrong = y_pred != y_true
    return {
        "accuracy": float(np.mean(~wrong)),
        "macro_f1": float(
            f1_score(
                y_true, y_pred, labels=list(range(N_CLASSES)), average="macro", zero_division=0
            )
        ),
        "flip_rate": float(np.mean(y_pred != y_clean)),
        "flag_rate": float(np.mean(flagged)),
        "silent_error_rate": float(np.mean(wrong & ~flagged)),
    }


def shift_outcomes(
    X: npt.NDArray[Any], y: npt.NDArray[Any], served: Served, pixels: tuple[int, ...]
) -> dict[tuple[Direction, int], ShiftOutcome]:
    """Every direction at every distance, per test image."""
    outcomes = {}
    for direction in TRANSLATIONS:
        for p in pixels:
            moved = translate(X, direction, p)
            labels = np.asarray(served.predict(moved))
            outcomes[direction, p] = ShiftOutcome(
                labels=labels,
                correct=np.asarray(labels == y),
                flagged=np.asarray(served.flag(moved), dtype=bool),
                kept=ink_kept(X, direction, p),
            )
    return outcomes


def stress_tests(
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    served: Served,
    outcomes: dict[tuple[Direction, int], ShiftOutcome],
    params: RobustnessParams,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Every stress family at every strength on its grid, keyed by family then strength."""
    y_clean = served.predict(X)

    def rng(test_index: int, strength_index: int) -> np.random.Generator:
        return np.random.default_rng([seed, test_index, strength_index])

    def scored(batch: npt.NDArray[Any]) -> dict[str, float]:
        return scores(y, served.predict(batch), y_clean, np.asarray(served.flag(batch), bool))

    results: dict[str, dict[str, Any]] = {
        "gaussian_noise": {
            "strength": "sigma (pixel scale 0..16)",
            "by_strength": {
                strength_key(s): scored(gaussian_noise(X, s, rng(0, i)))
                for i, s in enumerate(params.noise_sigmas)
            },
        },
        "salt_and_pepper": {
            "strength": "fraction of pixels set to 0 or 16",
            "by_strength": {
                strength_key(r): scored(salt_and_pepper(X, r, rng(1, i)))
                for i, r in enumerate(params.salt_and_pepper_rates)
            },
        },
        "occlusion": {
            "strength": "side k of one random k x k patch set to 0",
            "by_strength": {
                strength_key(k): scored(occlusion(X, k, rng(2, i)))
                for i, k in enumerate(params.occlusion_patches)
            },
        },
    }
    for direction in TRANSLATIONS:
        by_strength = {}
        for p in params.shift_pixels:
            outcome = outcomes[direction, p]
            record: dict[str, Any] = scores(y, outcome.labels, y_clean, outcome.flagged)
            kept, cut = outcome.kept, ~outcome.kept
            record["ink_kept"] = rates(outcome.correct[kept], outcome.flagged[kept])
            record["ink_cut"] = rates(outcome.correct[cut], outcome.flagged[cut])
            by_strength[strength_key(p)] = record
        along = direction.replace("_", " and ")
        results[family_name(direction)] = {
            "strength": f"pixels shifted {along} (each axis), vacated pixels 0",
            "by_strength": by_strength,
        }
    return results


def ink_cut_experiment(
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    served: Served,
    params: RobustnessParams,
    blank_rows: int,
    seed: int,
) -> dict[str, Any]:
    """What the detector's ink-cut rule achieves on shifts that cut ink off the frame.

    For each direction at the largest distance of the shift grid, on the rows whose ink is
    cut: accuracy, how often the rule, the PCA part and the served detector flag them, and
    the silent-error rate with the PCA part alone and with the served detector. Then the
    rule's false alarms (clean, 1-pixel shifts, noise) and the same cut rows with Gaussian
    noise of the noise gate's sigma added, where the vacated rows are no longer blank.
    """
    far = max(params.shift_pixels)
    by_direction = {}
    for direction in TRANSLATIONS:
        moved = translate(X, direction, far)
        cut = ~ink_kept(X, direction, far)
        by_direction[direction] = _cut_record(moved[cut], y[cut], served, blank_rows)
    sigma = params.gates.noise.sigma
    rng = np.random.default_rng([seed, _CUT_NOISE_SALT])
    vertical = [d for d in TRANSLATIONS if d.split("_")[0] in ("up", "down")]
    noisy_parts = []
    for direction in vertical:
        cut = ~ink_kept(X, direction, far)
        noisy_parts.append((gaussian_noise(translate(X, direction, far)[cut], sigma, rng), y[cut]))
    noisy_X = np.concatenate([part for part, _ in noisy_parts])
    noisy_y = np.concatenate([labels for _, labels in noisy_parts])
    one_pixel = np.concatenate([translate(X, d, 1) for d in TRANSLATIONS])
    return {
        "rule": (
            f"ink in the top (bottom) pixel row while the bottom (top) {blank_rows} rows are "
            "blank; part of the served detector"
            if blank_rows
            else "off (ood.ink_cut_blank_rows: 0)"
        ),
        "blank_rows": blank_rows,
        "pixels": far,
        "by_direction": by_direction,
        "rule_false_flags": {
            "clean_test": float(np.mean(ink_cut(X, blank_rows))),
            "shifted_1px_test": float(np.mean(ink_cut(one_pixel, blank_rows))),
            "noise_test": float(np.mean(ink_cut(gaussian_noise(X, sigma, rng), blank_rows))),
        },
        "with_noise": {
            "sigma": sigma,
            "directions": list(vertical),
            **_cut_record(noisy_X, noisy_y, served, blank_rows),
        },
    }


def _cut_record(
    X: npt.NDArray[Any], y: npt.NDArray[Any], served: Served, blank_rows: int
) -> dict[str, Any]:
    """Accuracy, flag rates (rule, PCA part, served) and silent errors of cut rows."""
    if len(y) == 0:
        return {"n": 0}
    wrong = served.predict(X) != y
    flagged = np.asarray(served.flag(X), dtype=bool)
    pca = np.asarray(served.flag_pca(X), dtype=bool)
    return {
        "n": len(y),
        "accuracy": float(np.mean(~wrong)),
        "rule_flag_rate": float(np.mean(ink_cut(X, blank_rows))),
        "pca_flag_rate": float(np.mean(pca)),
        "flag_rate": float(np.mean(flagged)),
        "silent_error_rate_pca_only": float(np.mean(wrong & ~pca)),
        "silent_error_rate": float(np.mean(wrong & ~flagged)),
    }
