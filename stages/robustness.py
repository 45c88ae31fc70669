"""robustness: stress tests and adversarial attacks on the trained model, with gates.

Stress tests (Gaussian noise, salt-and-pepper, 1..k pixel shifts, random
occlusion) run on the whole test split through the exported ONNX model.
Adversarial attacks use the Adversarial Robustness Toolbox (ART) on the
scikit-learn model, in input space (pixels 0..16), and the adversarial images
are scored by the ONNX model. Models without loss gradients in ART get a
black-box HopSkipJump attack on a bounded subset instead.
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

from stages.artifacts import read_bytes, read_npz, write_json
from stages.evaluate import load_sklearn_model
from stages.params import AttackName, RobustnessGates, RobustnessParams, load_params
from stages.perturbations import (
    DIRECTIONS,
    PIXEL_MAX,
    PIXEL_MIN,
    gaussian_noise,
    occlusion,
    salt_and_pepper,
    shift,
)
from stages.runner import StageError, run_stage
from stages.train import onnx_predict

N_CLASSES = 10
ATTACKS: tuple[AttackName, ...] = ("fgsm", "pgd", "hopskipjump")
Predict = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]


class RobustnessGateError(StageError):
    """At least one robustness gate failed."""


def strength_key(value: float) -> str:
    """A stable report key for a strength: ``0.5``, ``2``."""
    return f"{value:g}"


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
    for direction in DIRECTIONS:
        results[f"shift_{direction}"] = {
            "strength": f"pixels shifted {direction}, vacated pixels 0",
            "by_strength": {
                strength_key(p): scores(y, predict(shift(X, direction, p)), y_clean)
                for p in params.shift_pixels
            },
        }
    return results


def input_space_logistic_regression(model: Any) -> Any:
    """Fold a fitted ``Pipeline(StandardScaler, LogisticRegression)`` into one input-space model.

    ``z = W (x - mean) / scale + b = (W / scale) x + (b - (W / scale) mean)``, so the
    folded model has the same probabilities and its gradients are exact in pixel
    space. (ART 1.20's ScikitlearnLogisticRegression.loss_gradient re-applies its
    ``preprocessing`` inside ``predict``, so ``preprocessing=(mean, scale)`` gives
    wrong loss gradients; folding avoids that.)
    """
    from sklearn.linear_model import LogisticRegression

    if isinstance(model, LogisticRegression):
        return model
    steps = getattr(model, "named_steps", {})
    classifier, scaler = steps.get("classifier"), steps.get("scaler")
    if not isinstance(classifier, LogisticRegression) or scaler is None:
        raise StageError(f"cannot fold {type(model).__name__} into an input-space linear model")
    folded = LogisticRegression()
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    mean = np.asarray(scaler.mean_, dtype=np.float64)
    folded.coef_ = np.asarray(classifier.coef_, dtype=np.float64) / scale
    folded.intercept_ = np.asarray(classifier.intercept_, dtype=np.float64) - folded.coef_ @ mean
    folded.classes_ = classifier.classes_
    folded.n_features_in_ = len(mean)
    return folded


def gradient_classifier(model: Any) -> tuple[Any | None, str]:
    """An ART classifier with loss gradients in pixel space, or ``None`` and the reason."""
    from sklearn.linear_model import LogisticRegression

    classifier = getattr(model, "named_steps", {}).get("classifier", model)
    if not isinstance(classifier, LogisticRegression):
        return None, (
            f"skipped: ART has no loss gradients for {describe(model)}; "
            "black-box HopSkipJump is run instead"
        )
    from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression

    art_model = ScikitlearnLogisticRegression(
        input_space_logistic_regression(model), clip_values=(PIXEL_MIN, PIXEL_MAX)
    )
    return art_model, "ok"


def describe(model: Any) -> str:
    """``Pipeline(StandardScaler, CalibratedClassifierCV)``-style model description."""
    steps = getattr(model, "named_steps", None)
    if steps is None:
        return type(model).__name__
    return f"Pipeline({', '.join(type(step).__name__ for step in steps.values())})"


def subset_indices(n: int, size: int, seed: int, salt: int) -> npt.NDArray[Any]:
    """A seeded, sorted subset of ``min(size, n)`` row indices."""
    rng = np.random.default_rng([seed, salt])
    return np.sort(rng.permutation(n)[: min(size, n)])


def attack_scores(
    X: npt.NDArray[Any],
    X_adv: npt.NDArray[Any],
    y: npt.NDArray[Any],
    y_clean: npt.NDArray[Any],
    predict: Predict,
) -> dict[str, float]:
    """Adversarial accuracy, perturbation norms and success rate on initially-correct rows."""
    y_adv = predict(X_adv)
    delta = (X_adv - X).astype(np.float64)
    correct = y_clean == y
    return {
        "adversarial_accuracy": float(np.mean(y_adv == y)),
        "mean_linf": float(np.mean(np.max(np.abs(delta), axis=1))),
        "mean_l2": float(np.mean(np.linalg.norm(delta, axis=1))),
        "attack_success_rate": float(np.mean(y_adv[correct] != y[correct]))
        if np.any(correct)
        else 0.0,
    }


def gradient_attacks(
    art_model: Any,
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    predict: Predict,
    params: RobustnessParams,
) -> dict[str, dict[str, Any]]:
    """FGSM and PGD (L-inf) at every eps of the grid on ``X``."""
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    y_clean = predict(X)
    one_hot = np.eye(N_CLASSES)[y]
    results: dict[str, dict[str, Any]] = {
        "fgsm": {"status": "ok", "norm": "inf", "by_eps": {}},
        "pgd": {
            "status": "ok",
            "norm": "inf",
            "max_iter": params.pgd_max_iter,
            "eps_step": f"{params.pgd_step_fraction:g} * eps",
            "by_eps": {},
        },
    }
    for eps in params.attack_eps:
        key = strength_key(eps)
        if eps == 0:
            for name in ("fgsm", "pgd"):
                results[name]["by_eps"][key] = attack_scores(X, X.copy(), y, y_clean, predict)
            continue
        fgsm = FastGradientMethod(art_model, norm=np.inf, eps=eps, batch_size=len(X))
        results["fgsm"]["by_eps"][key] = attack_scores(
            X, fgsm.generate(X, y=one_hot), y, y_clean, predict
        )
        pgd = ProjectedGradientDescent(
            art_model,
            norm=np.inf,
            eps=eps,
            eps_step=eps * params.pgd_step_fraction,
            max_iter=params.pgd_max_iter,
            num_random_init=0,
            batch_size=len(X),
            verbose=True,
        )
        results["pgd"]["by_eps"][key] = attack_scores(
            X, pgd.generate(X, y=one_hot), y, y_clean, predict
        )
    return results


def hopskipjump_attack(
    model: Any,
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    predict: Predict,
    params: RobustnessParams,
    seed: int,
) -> dict[str, Any]:
    """Black-box, minimal L-inf HopSkipJump on ``X`` (untargeted).

    Adversarial accuracy at eps counts a row as robust when the attack found no
    adversarial example within L-inf distance eps.
    """
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    def predict_proba(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.asarray(model.predict_proba(batch), dtype=np.float64)

    black_box = BlackBoxClassifier(
        predict_proba,
        input_shape=(X.shape[1],),
        nb_classes=N_CLASSES,
        clip_values=(PIXEL_MIN, PIXEL_MAX),
    )
    attack = HopSkipJump(
        black_box,
        targeted=False,
        norm=np.inf,
        max_iter=params.blackbox_max_iter,
        max_eval=params.blackbox_max_eval,
        init_eval=params.blackbox_init_eval,
        init_size=100,
        batch_size=64,
        verbose=True,
    )
    np.random.seed(seed)  # HopSkipJump draws from numpy's global generator.
    X_adv = np.clip(attack.generate(X), PIXEL_MIN, PIXEL_MAX)
    y_clean = predict(X)
    y_adv = predict(X_adv)
    distance = np.max(np.abs(X_adv - X), axis=1)
    found = y_adv != y
    overall = attack_scores(X, X_adv, y, y_clean, predict)
    by_eps = {
        strength_key(eps): {
            "adversarial_accuracy": float(np.mean(~(found & (distance <= eps)))),
        }
        for eps in params.attack_eps
    }
    return {
        "status": "ok",
        "norm": "inf",
        "subset_size": len(X),
        "max_iter": params.blackbox_max_iter,
        "unbounded": overall,
        "by_eps": by_eps,
    }


def adversarial_attacks(
    model: Any,
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    predict: Predict,
    params: RobustnessParams,
    seed: int,
) -> dict[str, Any]:
    """White-box FGSM/PGD where ART has gradients, else black-box HopSkipJump."""
    art_model, reason = gradient_classifier(model)
    attack_rows = subset_indices(len(X), params.attack_subset, seed, salt=101)
    X_attack, y_attack = X[attack_rows], y[attack_rows]
    report: dict[str, Any] = {
        "model": describe(model),
        "input_space": "pixels 0..16, adversarial images clipped to 0..16",
        "subset_size": len(attack_rows),
        "clean_accuracy_subset": float(np.mean(predict(X_attack) == y_attack)),
    }
    if art_model is not None:
        report.update(gradient_attacks(art_model, X_attack, y_attack, predict, params))
        report["hopskipjump"] = {
            "status": "skipped: white-box FGSM/PGD apply to this model (ART has its gradients)"
        }
    else:
        report["fgsm"] = {"status": reason}
        report["pgd"] = {"status": reason}
        bb_rows = subset_indices(len(X), params.blackbox_subset, seed, salt=202)
        report["hopskipjump"] = hopskipjump_attack(
            model, X[bb_rows], y[bb_rows], predict, params, seed
        )
    return report


def evaluate_gates(report: dict[str, Any], gates: RobustnessGates) -> dict[str, dict[str, Any]]:
    """Pass/fail per gate; an unmeasured gate fails and says why."""
    noise_key = strength_key(gates.noise_sigma)
    noise = report["stress"]["gaussian_noise"]["by_strength"].get(noise_key)
    attack = report["adversarial"].get(gates.adversarial_attack, {})
    eps_key = strength_key(gates.adversarial_eps)
    adversarial = attack.get("by_eps", {}).get(eps_key)
    verdicts: dict[str, dict[str, Any]] = {
        "min_noise_accuracy": {
            "description": f"accuracy under Gaussian noise sigma={noise_key}",
            "threshold": gates.min_noise_accuracy,
            "measured": None if noise is None else noise["accuracy"],
        },
        "min_adversarial_accuracy": {
            "description": f"{gates.adversarial_attack} adversarial accuracy at eps={eps_key}",
            "threshold": gates.min_adversarial_accuracy,
            "measured": None if adversarial is None else adversarial["adversarial_accuracy"],
        },
    }
    if adversarial is None:
        verdicts["min_adversarial_accuracy"]["reason"] = (
            f"not measured: {attack.get('status', 'attack not run')}"
        )
    if noise is None:
        verdicts["min_noise_accuracy"]["reason"] = "not measured: sigma not on the grid"
    for verdict in verdicts.values():
        measured = verdict["measured"]
        verdict["passed"] = measured is not None and measured >= verdict["threshold"]
    return verdicts


def gate_failures(verdicts: dict[str, dict[str, Any]]) -> list[str]:
    """One message per failed gate, naming the gate, its threshold and the measured value."""
    messages = []
    for name, verdict in verdicts.items():
        if verdict["passed"]:
            continue
        measured = verdict["measured"]
        shown = verdict.get("reason", "") if measured is None else f"{measured:.4f}"
        messages.append(
            f"gate robustness.gates.{name} failed: {verdict['description']} = {shown}, "
            f"threshold {verdict['threshold']}"
        )
    return messages


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
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    predict: Predict,
    params: RobustnessParams,
    seed: int,
) -> dict[str, Any]:
    """The whole report: clean scores, stress tests, attacks and gate verdicts."""
    y_clean = predict(X)
    report: dict[str, Any] = {
        "n_test": len(y),
        "clean": scores(y, y_clean, y_clean),
        "stress": stress_tests(X, y, predict, params, seed),
        "adversarial": adversarial_attacks(model, X, y, predict, params, seed),
    }
    report["gates"] = evaluate_gates(report, params.gates)
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

        with warnings.catch_warnings():
            # ART warns at import that PyTorch (unused here) is absent.
            warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
            report = robustness_report(
                model, test["X"], test["y"], predict, params.robustness, params.seed
            )
        write_json(args.report, report)
        for name, rows in plot_rows(report).items():
            write_json(args.plots_dir / f"robustness_{name}.json", rows)
        noise = report["stress"]["gaussian_noise"]["by_strength"]
        print(
            "robustness: noise accuracy "
            + ", ".join(f"sigma={k}: {v['accuracy']:.3f}" for k, v in noise.items())
        )
        failures = gate_failures(report["gates"])
        if failures:
            raise RobustnessGateError("; ".join(failures))
        print("robustness: all gates passed")

    return run_stage("robustness", body)


if __name__ == "__main__":
    sys.exit(main())
