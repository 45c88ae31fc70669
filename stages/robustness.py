"""robustness: stress tests and adversarial attacks on the served model, with gates.

Stress tests (Gaussian noise, salt-and-pepper, 1..k pixel shifts, random
occlusion) run on the whole test split through the exported ONNX model.
Adversarial attacks (ART, see :mod:`stages.lib.adversarial`) are white-box or
transferred from a surrogate, plus decision-based HopSkipJump, all scored by
the ONNX model. Gates carry their rationale and a 95 % confidence interval.
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

from stages.lib.adversarial import (
    N_CLASSES,
    Predict,
    adversarial_attacks,
    strength_key,
    transfer_surrogate,
)
from stages.lib.artifacts import read_bytes, read_npz, write_json
from stages.lib.classifier import load_sklearn_model, onnx_predict
from stages.lib.gates import (
    accuracy_interval,
    bootstrap_mean_interval,
    enforce,
    status,
    verdict,
    wilson_interval,
)
from stages.lib.params import AttackName, Params, RobustnessParams, load_params
from stages.lib.perturbations import (
    DIAGONALS,
    DIRECTIONS,
    diagonal_shift,
    gaussian_noise,
    occlusion,
    salt_and_pepper,
    shift,
)
from stages.lib.runner import run_stage

ATTACKS: tuple[AttackName, ...] = ("fgsm", "pgd", "hopskipjump")


def scores(
    y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any], y_clean: npt.NDArray[Any]
) -> dict[str, float]:
    """Accuracy, macro-F1 and the fraction of predictions that differ from the clean ones."""
    from sklearn.metrics import f1_score

    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "macro_f1": float(
            f1_score(
                y_true, y_pred, labels=list(range(N_CLASSES)), average="macro", zero_division=0
            )
        ),
        "flip_rate": float(np.mean(y_pred != y_clean)),
    }


def stress_tests(
    X: npt.NDArray[Any], y: npt.NDArray[Any], predict: Predict, params: RobustnessParams, seed: int
) -> dict[str, dict[str, Any]]:
    """Every stress test at every strength on its grid, keyed by test then strength."""
    y_clean = predict(X)

    def rng(test_index: int, strength_index: int) -> np.random.Generator:
        return np.random.default_rng([seed, test_index, strength_index])

    results: dict[str, dict[str, Any]] = {
        "gaussian_noise": {
            "strength": "sigma (pixel scale 0..16)",
            "by_strength": {
                strength_key(s): scores(y, predict(gaussian_noise(X, s, rng(0, i))), y_clean)
                for i, s in enumerate(params.noise_sigmas)
            },
        },
        "salt_and_pepper": {
            "strength": "fraction of pixels set to 0 or 16",
            "by_strength": {
                strength_key(r): scores(y, predict(salt_and_pepper(X, r, rng(1, i))), y_clean)
                for i, r in enumerate(params.salt_and_pepper_rates)
            },
        },
        "occlusion": {
            "strength": "side k of one random k x k patch set to 0",
            "by_strength": {
                strength_key(k): scores(y, predict(occlusion(X, k, rng(2, i))), y_clean)
                for i, k in enumerate(params.occlusion_patches)
            },
        },
    }
    for vertical, horizontal in DIAGONALS:
        results[f"diagonal_shift_{vertical}_{horizontal}"] = {
            "strength": f"pixels shifted {vertical} and {horizontal} alike, vacated pixels 0",
            "by_strength": {
                strength_key(p): scores(
                    y, predict(diagonal_shift(X, vertical, horizontal, p)), y_clean
                )
                for p in params.shift_pixels
            },
        }
    for direction in DIRECTIONS:
        results[f"shift_{direction}"] = {
            "strength": f"pixels shifted {direction}, vacated pixels 0",
            "by_strength": {
                strength_key(p): scores(y, predict(shift(X, direction, p)), y_clean)
                for p in params.shift_pixels
            },
        }
    return results


def shift_correctness(
    X: npt.NDArray[Any], y: npt.NDArray[Any], predict: Predict, pixels: int
) -> npt.NDArray[np.bool_]:
    """``[4, n]``: whether each test digit shifted ``pixels`` in each direction is read right."""
    return np.stack([predict(shift(X, d, pixels)) == y for d in DIRECTIONS])


def evaluate_gates(
    report: dict[str, Any],
    shift_correct: dict[int, npt.NDArray[np.bool_]],
    params: RobustnessParams,
    seed: int,
    level: float,
) -> dict[str, dict[str, Any]]:
    """Every robustness gate's verdict, with its confidence interval and rationale."""
    gates = params.gates
    n_test = int(report["n_test"])

    def wilson_of(accuracy: float, n: int) -> tuple[float, float]:
        return wilson_interval(round(accuracy * n), n, level)

    mean_gate, worst_gate = gates.shift_mean, gates.shift_worst_direction
    per_image = shift_correct[mean_gate.pixels].mean(axis=0)
    worst_correct = shift_correct[worst_gate.pixels]
    worst_index = int(np.argmin(worst_correct.mean(axis=1)))
    noise = report["stress"]["gaussian_noise"]["by_strength"][strength_key(gates.noise.sigma)]
    adv_gate = gates.adversarial
    attack = report["adversarial"].get(adv_gate.attack, {})
    adversarial = attack.get("by_eps", {}).get(strength_key(adv_gate.eps))
    n_attacked = int(attack.get("subset_size", report["adversarial"]["subset_size"]))
    adv_value = None if adversarial is None else adversarial["adversarial_accuracy"]
    return {
        "shift_mean": verdict(
            description=f"mean accuracy over 4 directions at a {mean_gate.pixels}-pixel shift",
            value=float(per_image.mean()),
            threshold=mean_gate.threshold,
            rationale=mean_gate.rationale,
            interval=bootstrap_mean_interval(per_image, level, params.bootstrap_resamples, seed),
        ),
        "shift_worst_direction": verdict(
            description=(
                f"lowest direction ({DIRECTIONS[worst_index]}) at a {worst_gate.pixels}-pixel shift"
            ),
            value=float(worst_correct[worst_index].mean()),
            threshold=worst_gate.threshold,
            rationale=worst_gate.rationale,
            interval=accuracy_interval(worst_correct[worst_index], level),
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
    predict: Predict,
    predict_proba: Predict,
    params: Params,
) -> dict[str, Any]:
    """The whole report: clean scores, stress tests, attacks and gate verdicts."""
    rob = params.robustness
    y_clean = predict(X)
    report: dict[str, Any] = {
        "n_test": len(y),
        "clean": scores(y, y_clean, y_clean),
        "stress": stress_tests(X, y, predict, rob, params.seed),
        "adversarial": adversarial_attacks(
            model, surrogate, X, y, predict, predict_proba, rob, params.seed
        ),
    }
    pixels = {rob.gates.shift_mean.pixels, rob.gates.shift_worst_direction.pixels}
    shift_correct = {p: shift_correctness(X, y, predict, p) for p in pixels}
    report["gates"] = evaluate_gates(
        report, shift_correct, rob, params.seed, params.evaluate.confidence_level
    )
    report["passed"] = all(v["passed"] for v in report["gates"].values())
    return report


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
        onnx_bytes = read_bytes(args.model_dir / "model.onnx")
        model = load_sklearn_model(args.model_dir / "model.joblib")

        def predict(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return onnx_predict(onnx_bytes, batch)[0]

        def predict_proba(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return onnx_predict(onnx_bytes, batch)[1]

        def surrogate() -> Any:
            train = read_npz(args.data_dir / "train.npz", ("X", "y"))
            return transfer_surrogate(train["X"], train["y"], params.train, params.seed)

        with warnings.catch_warnings():
            # ART warns at import that PyTorch (unused here) is absent.
            warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
            report = robustness_report(
                model, surrogate, test["X"], test["y"], predict, predict_proba, params
            )
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
