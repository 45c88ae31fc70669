"""select: train every candidate on augmented data and pick one on a validation split.

The validation split is carved from the training split (stratified, seeded);
the test split is never read here. Each candidate is fitted on the augmented
rest of the training split, exported to ONNX (the served form, alignment included), and
scored on the validation split on the families the test gates use: clean, shifted in each
of the 8 directions, shifted further with all ink kept in the frame, and with Gaussian noise.
``train.selection`` in ``params.yaml`` holds the rule; the report
``reports/model_selection.json`` lists every candidate and why the winner won.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from stages.lib.artifacts import read_npz, write_json
from stages.lib.augment import augment, copies_per_image, validation_split
from stages.lib.classifier import export_onnx, fit_model, onnx_predict
from stages.lib.gates import SELECTION_CRITERIA, validation_trials, wilson_interval
from stages.lib.params import ModelType, Params, load_params
from stages.lib.perturbations import TRANSLATIONS, gaussian_noise, ink_kept, translate
from stages.lib.runner import run_stage

_NOISE_SALT = 7101
CRITERIA = SELECTION_CRITERIA


def rule_text(params: Params) -> str:
    """The selection rule in words, with the numbers in force."""
    sel = params.train.selection
    return (
        f"eligible: ONNX export <= {sel.max_onnx_bytes} bytes and, for each test gate (clean, "
        "mean shift and worst shift direction over 8 directions, shifts that keep all ink in "
        "the frame, noise), the upper end of the 95 % Wilson interval of the validation "
        "accuracy reaches the gate; "
        f"winner: highest {sel.score} score over {', '.join(CRITERIA)}; "
        "ties: smaller ONNX file, then earlier candidate"
    )


def gate_thresholds(params: Params) -> dict[str, float]:
    """The test-split gate each validation criterion must reach to be eligible."""
    gates = params.robustness.gates
    return {
        "clean": params.evaluate.gates.clean_accuracy.threshold,
        "shift_mean": gates.shift_mean.threshold,
        "shift_worst_direction": gates.shift_worst_direction.threshold,
        "shift_ink_kept": gates.shift_ink_kept.threshold,
        "noise": gates.noise.threshold,
    }


def validation_scores(
    onnx_bytes: bytes, X: npt.NDArray[Any], y: npt.NDArray[Any], params: Params
) -> dict[str, Any]:
    """Accuracy of the exported candidate on clean, shifted and noisy validation rows.

    ``shift_ink_kept`` pools every (image, direction) whose shift by the gate's distance
    keeps all the image's ink in the frame (``n_ink_kept`` of them).
    """
    sel = params.train.selection

    def correct(batch: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        return np.asarray(onnx_predict(onnx_bytes, batch)[0] == y)

    shifted = {d: float(np.mean(correct(translate(X, d, sel.shift_pixels)))) for d in TRANSLATIONS}
    far = params.robustness.gates.shift_ink_kept.pixels
    kept = np.concatenate(
        [correct(translate(X, d, far))[ink_kept(X, d, far)] for d in TRANSLATIONS]
    )
    rng = np.random.default_rng([params.seed, _NOISE_SALT])
    scores = {
        "n_images": len(y),
        "n_directions": len(TRANSLATIONS),
        "n_ink_kept": int(kept.size),
        "clean": float(np.mean(correct(X))),
        **{f"shift_{d}": value for d, value in shifted.items()},
        "shift_mean": float(np.mean(list(shifted.values()))),
        "shift_worst_direction": min(shifted.values()),
        "shift_ink_kept": float(np.mean(kept)) if kept.size else 0.0,
        "noise": float(np.mean(correct(gaussian_noise(X, sel.noise_sigma, rng)))),
    }
    if params.train.selection.score == "worst_case":
        scores["score"] = min(scores[c] for c in CRITERIA)
    else:
        scores["score"] = float(np.mean([scores[c] for c in CRITERIA]))
    return scores


def judge(candidate: dict[str, Any], params: Params) -> list[str]:
    """Why a candidate is not eligible (empty when it is)."""
    reasons = []
    limit = params.train.selection.max_onnx_bytes
    if candidate["onnx_bytes"] > limit:
        reasons.append(f"ONNX export {candidate['onnx_bytes']} bytes > {limit}")
    validation = candidate["validation"]
    level = params.evaluate.confidence_level
    for criterion, threshold in gate_thresholds(params).items():
        value = validation[criterion]
        # Clearly below the gate: even the upper end of the interval misses it. A
        # validation split of a few hundred images cannot resolve differences of 1 image.
        trials = validation_trials(criterion, validation)
        upper = value
        if trials is not None:
            upper = wilson_interval(round(value * trials), trials, level)[1]
        if upper < threshold:
            reasons.append(
                f"validation {criterion} {value:.4f} (95 % upper bound {upper:.4f}) < {threshold}"
            )
    return reasons


def choose(candidates: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The winner's name and a one-paragraph reason, by the documented rule."""
    order = list(candidates)
    eligible = [name for name in order if candidates[name]["eligible"]]
    pool = eligible or order

    def key(name: str) -> tuple[float, int, int]:
        c = candidates[name]
        return (-c["validation"]["score"], c["onnx_bytes"], order.index(name))

    winner = min(pool, key=key)
    best = candidates[winner]
    head = (
        f"{winner} wins with validation score {best['validation']['score']:.4f} "
        f"({len(eligible)} of {len(order)} candidates eligible)"
        if eligible
        else f"no candidate is eligible; {winner} has the highest validation score "
        f"{best['validation']['score']:.4f} and the test gates decide"
    )
    others = [
        f"{name}: score {candidates[name]['validation']['score']:.4f}"
        + (
            f", not eligible ({'; '.join(candidates[name]['ineligible_because'])})"
            if not candidates[name]["eligible"]
            else ""
        )
        for name in order
        if name != winner
    ]
    return winner, head + (". Others: " + ", ".join(others) if others else "")


def score_candidate(
    model_type: ModelType,
    X_fit: npt.NDArray[Any],
    y_fit: npt.NDArray[Any],
    X_val: npt.NDArray[Any],
    y_val: npt.NDArray[Any],
    params: Params,
) -> dict[str, Any]:
    """Fit, export and score one candidate (single-threaded BLAS, as in the stage)."""
    with threadpool_limits(limits=1):
        model = fit_model(model_type, params.train, params.seed, X_fit, y_fit)
        onnx_bytes = export_onnx(model)
        candidate: dict[str, Any] = {
            "onnx_bytes": len(onnx_bytes),
            "validation": validation_scores(onnx_bytes, X_val, y_val, params),
        }
    reasons = judge(candidate, params)
    candidate["eligible"] = not reasons
    candidate["ineligible_because"] = reasons
    return candidate


def score_candidates(
    X_fit: npt.NDArray[Any],
    y_fit: npt.NDArray[Any],
    X_val: npt.NDArray[Any],
    y_val: npt.NDArray[Any],
    params: Params,
) -> dict[str, dict[str, Any]]:
    """Every candidate's scores, in ``train.selection.candidates`` order.

    Candidates are independent single-threaded fits, so they run in forked processes, one
    per available core (a forked child has the stage's imports already); each result is
    the same as a fit in the stage's own process.
    """
    names = list(params.train.selection.candidates)
    workers = min(len(names), len(os.sched_getaffinity(0)))
    if workers < 2:
        return {n: score_candidate(n, X_fit, y_fit, X_val, y_val, params) for n in names}
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            n: pool.submit(score_candidate, n, X_fit, y_fit, X_val, y_val, params) for n in names
        }
        return {n: future.result() for n, future in futures.items()}


def select_model(
    X: npt.NDArray[Any], y: npt.NDArray[Any], params: Params
) -> tuple[dict[str, Any], str]:
    """Fit, export and score every candidate; the report and the winner's name."""
    sel = params.train.selection
    fit_rows, validation_rows = validation_split(y, sel.validation_size, params.seed)
    X_fit, y_fit = augment(X[fit_rows], y[fit_rows], params.train.augment, params.seed)
    X_val, y_val = X[validation_rows], y[validation_rows]
    candidates = score_candidates(X_fit, y_fit, X_val, y_val, params)
    winner, why = choose(candidates)
    report = {
        "rule": rule_text(params),
        "thresholds": gate_thresholds(params),
        "data": {
            "n_fit_images": len(fit_rows),
            "n_validation_images": len(validation_rows),
            "rows_per_image": copies_per_image(params.train.augment),
            "n_fit_rows": len(y_fit),
        },
        "candidates": candidates,
        "winner": winner,
        "why": why,
    }
    return report, winner


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.select --params P --data-dir D --report R``."""
    parser = argparse.ArgumentParser(prog="python -m stages.select", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        train = read_npz(args.data_dir / "train.npz", ("X", "y"))
        report, _ = select_model(train["X"], train["y"], params)
        write_json(args.report, report)
        print(f"select: {report['why']}")

    return run_stage("select", body)


if __name__ == "__main__":
    sys.exit(main())
