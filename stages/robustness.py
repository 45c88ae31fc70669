"""robustness: stress tests and adversarial attacks on the served model, with gates.

Stress tests (Gaussian noise, salt-and-pepper, shifts in 8 directions, random occlusion) run
on the whole test split through the exported ONNX model, and through the served
out-of-distribution detector: every family and strength reports accuracy, the flag rate and
the silent-error rate (wrong and not flagged) (:mod:`stages.lib.stress`), shifts also apart
for the rows whose ink stays in the frame and those whose ink is cut. Adversarial attacks
(ART, see :mod:`stages.lib.adversarial`) are white-box or transferred from a surrogate, plus
decision-based HopSkipJump, all scored by the ONNX model. Gates carry their rationale and a
95 % confidence interval.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.adversarial import adversarial_attacks, strength_key, transfer_surrogate
from stages.lib.artifacts import read_bytes, read_npz, write_json
from stages.lib.classifier import (
    OOD_PCA_SCORE_OUTPUT,
    load_sklearn_model,
    onnx_predict,
    onnx_scores,
)
from stages.lib.gates import (
    accuracy_interval,
    bootstrap_mean_interval,
    enforce,
    status,
    verdict,
    wilson_interval,
)
from stages.lib.params import AttackName, Direction, Params, RobustnessParams, load_params
from stages.lib.perturbations import DIAGONALS, DIRECTIONS, TRANSLATIONS, family_name
from stages.lib.runner import run_stage
from stages.lib.stress import (
    Served,
    ShiftOutcome,
    ink_cut_experiment,
    scores,
    shift_outcomes,
    stress_tests,
)

ATTACKS: tuple[AttackName, ...] = ("fgsm", "pgd", "hopskipjump")


def evaluate_gates(
    report: dict[str, Any],
    outcomes: dict[tuple[Direction, int], ShiftOutcome],
    params: RobustnessParams,
    seed: int,
    level: float,
) -> dict[str, dict[str, Any]]:
    """Every robustness gate's verdict, with its confidence interval and rationale.

    ``outcomes`` holds, per (direction, distance) of the shift grid, each test image's
    outcome (:func:`stages.lib.stress.shift_outcomes`).
    """
    gates = params.gates
    n_test = int(report["n_test"])

    def wilson_of(accuracy: float, n: int) -> tuple[float, float]:
        return wilson_interval(round(accuracy * n), n, level)

    def stacked(pixels: int, field: str) -> npt.NDArray[np.bool_]:
        """``[8, n]``: one row per direction."""
        return np.stack([getattr(outcomes[d, pixels], field) for d in TRANSLATIONS])

    n_directions = len(TRANSLATIONS)
    mean_gate, worst_gate = gates.shift_mean, gates.shift_worst_direction
    silent_gate, kept_gate = gates.shift_silent_error, gates.shift_ink_kept
    per_image = stacked(mean_gate.pixels, "correct").mean(axis=0)
    worst_correct = stacked(worst_gate.pixels, "correct")
    worst_index = int(np.argmin(worst_correct.mean(axis=1)))
    silent = ~stacked(silent_gate.pixels, "correct") & ~stacked(silent_gate.pixels, "flagged")
    silent_index = int(np.argmax(silent.mean(axis=1)))
    kept = np.concatenate(
        [outcomes[d, kept_gate.pixels].correct[outcomes[d, kept_gate.pixels].kept]
         for d in TRANSLATIONS]
    )  # fmt: skip
    noise = report["stress"]["gaussian_noise"]["by_strength"][strength_key(gates.noise.sigma)]
    adv_gate = gates.adversarial
    attack = report["adversarial"].get(adv_gate.attack, {})
    adversarial = attack.get("by_eps", {}).get(strength_key(adv_gate.eps))
    n_attacked = int(attack.get("subset_size", report["adversarial"]["subset_size"]))
    adv_value = None if adversarial is None else adversarial["adversarial_accuracy"]
    return {
        "shift_mean": verdict(
            description=(
                f"mean accuracy over {n_directions} directions at a {mean_gate.pixels}-pixel shift"
            ),
            value=float(per_image.mean()),
            threshold=mean_gate.threshold,
            rationale=mean_gate.rationale,
            interval=bootstrap_mean_interval(per_image, level, params.bootstrap_resamples, seed),
        ),
        "shift_worst_direction": verdict(
            description=(
                f"lowest direction ({TRANSLATIONS[worst_index]}) at a {worst_gate.pixels}-pixel "
                "shift"
            ),
            value=float(worst_correct[worst_index].mean()),
            threshold=worst_gate.threshold,
            rationale=worst_gate.rationale,
            interval=accuracy_interval(worst_correct[worst_index], level),
        ),
        "shift_silent_error": verdict(
            description=(
                f"highest silent-error rate (wrong and not flagged; {TRANSLATIONS[silent_index]}) "
                f"at a {silent_gate.pixels}-pixel shift"
            ),
            value=float(silent[silent_index].mean()),
            threshold=silent_gate.threshold,
            rationale=silent_gate.rationale,
            interval=accuracy_interval(silent[silent_index], level),
            kind="max",
        ),
        "shift_ink_kept": verdict(
            description=(
                f"accuracy at a {kept_gate.pixels}-pixel shift that keeps all ink in the frame "
                f"({kept.size} image-direction pairs of {n_directions} directions)"
            ),
            value=float(kept.mean()) if kept.size else None,
            threshold=kept_gate.threshold,
            rationale=kept_gate.rationale,
            interval=accuracy_interval(kept, level) if kept.size else None,
            reason=None if kept.size else "no shift of this distance keeps any image's ink",
        ),
        "noise": verdict(
            description=f"accuracy under Gaussian noise sigma={strength_key(gates.noise.sigma)}",
            value=noise["accuracy"],
            threshold=gates.noise.threshold,
            rationale=gates.noise.rationale,
            interval=wilson_of(noise["accuracy"], n_test),
        ),
        "adversarial": verdict(
            description=(
                f"{adv_gate.attack} accuracy at eps={strength_key(adv_gate.eps)} "
                f"({attack.get('kind', 'not run').split(' (')[0]})"
            ),
            value=adv_value,
            threshold=adv_gate.threshold,
            rationale=adv_gate.rationale,
            interval=None if adv_value is None else wilson_of(adv_value, n_attacked),
            reason=None if adversarial is not None else f"not measured: {attack.get('status')}",
        ),
    }


def plot_rows(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Accuracy against strength, one plot file per test family."""
    stress = report["stress"]

    def series(test: str, x_name: str) -> list[dict[str, Any]]:
        return [
            {x_name: float(key), "accuracy": row["accuracy"], "macro_f1": row["macro_f1"]}
            for key, row in stress[test]["by_strength"].items()
        ]

    shift_keys = stress["shift_up"]["by_strength"].keys()
    adversarial = report["adversarial"]
    eps_keys: list[str] = next(
        (list(adversarial[a]["by_eps"]) for a in ATTACKS if "by_eps" in adversarial[a]), []
    )
    return {
        "gaussian_noise": series("gaussian_noise", "sigma"),
        "salt_and_pepper": series("salt_and_pepper", "rate"),
        "occlusion": series("occlusion", "patch"),
        "shift": [
            {
                "pixels": float(key),
                **{d: stress[f"shift_{d}"]["by_strength"][key]["accuracy"] for d in DIRECTIONS},
            }
            for key in shift_keys
        ],
        "diagonal_shift": [
            {
                "pixels": float(key),
                **{
                    f"{v}_{h}": stress[f"diagonal_shift_{v}_{h}"]["by_strength"][key]["accuracy"]
                    for v, h in DIAGONALS
                },
            }
            for key in shift_keys
        ],
        "silent_errors": [
            {
                "pixels": float(key),
                **{
                    d: stress[family_name(d)]["by_strength"][key]["silent_error_rate"]
                    for d in TRANSLATIONS
                },
            }
            for key in shift_keys
        ],
        "adversarial": [
            {
                "eps": float(key),
                **{
                    a: adversarial[a]["by_eps"][key]["adversarial_accuracy"]
                    for a in ATTACKS
                    if "by_eps" in adversarial[a]
                },
            }
            for key in eps_keys
        ],
    }


def robustness_report(
    model: Any,
    surrogate: Callable[[], Any],
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    served: Served,
    params: Params,
) -> dict[str, Any]:
    """The whole report: clean scores, stress tests, the ink-cut experiment, attacks, gates."""
    rob = params.robustness
    y_clean = served.predict(X)
    flagged = np.asarray(served.flag(X), dtype=bool)
    outcomes = shift_outcomes(X, y, served, rob.shift_pixels)
    report: dict[str, Any] = {
        "n_test": len(y),
        "flag_rule": "ood_score > 1 (models/ood.onnx, the served detector)",
        "silent_error": "read wrong and not flagged",
        "clean": scores(y, y_clean, y_clean, flagged),
        "stress": stress_tests(X, y, served, outcomes, rob, params.seed),
        "ink_cut_flag": ink_cut_experiment(
            X, y, served, rob, params.ood.ink_cut_blank_rows, params.seed
        ),
        "adversarial": adversarial_attacks(
            model, surrogate, X, y, served.predict, served.predict_proba, rob, params.seed
        ),
    }
    report["gates"] = evaluate_gates(
        report, outcomes, rob, params.seed, params.evaluate.confidence_level
    )
    report["passed"] = all(v["passed"] for v in report["gates"].values())
    return report


def served_artifacts(onnx_bytes: bytes, ood_bytes: bytes) -> Served:
    """The served model and detector (ONNX Runtime) as functions of a batch."""

    def predict(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_predict(onnx_bytes, batch)[0]

    def predict_proba(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_predict(onnx_bytes, batch)[1]

    def flag(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_scores(ood_bytes, batch) > 1.0

    def flag_pca(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_scores(ood_bytes, batch, OOD_PCA_SCORE_OUTPUT) > 1.0

    return Served(predict, predict_proba, flag, flag_pca)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.robustness --params P --data-dir D --model-dir M ...``."""
    parser = argparse.ArgumentParser(prog="python -m stages.robustness", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--plots-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        test = read_npz(args.data_dir / "test.npz", ("X", "y"))
        served = served_artifacts(
            read_bytes(args.model_dir / "model.onnx"), read_bytes(args.model_dir / "ood.onnx")
        )
        model = load_sklearn_model(args.model_dir / "model.joblib")

        def surrogate() -> Any:
            train = read_npz(args.data_dir / "train.npz", ("X", "y"))
            return transfer_surrogate(train["X"], train["y"], params.train, params.seed)

        with warnings.catch_warnings():
            # ART warns at import that PyTorch (unused here) is absent.
            warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
            report = robustness_report(model, surrogate, test["X"], test["y"], served, params)
        write_json(args.report, report)
        for name, rows in plot_rows(report).items():
            write_json(args.plots_dir / f"robustness_{name}.json", rows)
        noise = report["stress"]["gaussian_noise"]["by_strength"]
        print(
            "robustness: noise accuracy "
            + ", ".join(f"sigma={k}: {v['accuracy']:.3f}" for k, v in noise.items())
        )
        for name, record in report["gates"].items():
            print(f"robustness: gate {name}: {record['value']} -> {status(record)}")
        enforce("robustness.gates", report["gates"])

    return run_stage("robustness", body)


if __name__ == "__main__":
    sys.exit(main())
